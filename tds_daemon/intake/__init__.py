"""Webhooks in: reading a delivery, storing it with its sync item before the 2xx, group commit,
sending the apply messages, intake pressure."""
