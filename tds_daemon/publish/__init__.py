"""Events out: reading the outbox by cursor, and pushing it to subscribers signed as Standard Webhooks."""
