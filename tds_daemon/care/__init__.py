"""Keeping the copy honest: healing, statistics, alerts, health, dead letters, retention, breakers,
the story of one object."""
