"""The ``tds`` command: the entry points on top of the core, one module per command group (``main`` composes them)."""
