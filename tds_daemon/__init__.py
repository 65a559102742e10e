"""TDS: keeps a PostgreSQL copy of Zoho Books / Zoho Inventory data correct and fresh."""

__version__ = "0.1.0"
