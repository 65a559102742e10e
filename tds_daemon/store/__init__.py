"""PostgreSQL: the schema, its migrations and the engines."""
