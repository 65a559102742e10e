"""Zoho to rows: the Zoho client (OAuth, limits, budget), list pulls, sync runs, the detail backfill and images."""
