"""Sync items to rows: the life of a sync item, the one upsert, the messages and the broker that
carry them, wake-ups."""
