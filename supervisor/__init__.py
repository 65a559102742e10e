"""The main process of ``tds run``: children, their restarts, and (later) the scheduler."""
