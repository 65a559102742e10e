"""Dramatiq actors: one per entity type (built from the registry), and the middleware they run under."""
