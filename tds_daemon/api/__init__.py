"""The HTTP API: Falcon resources as plain classes, assembled by ``app.create_app``."""
