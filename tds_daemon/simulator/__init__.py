"""``tds simulator``: a local stand-in for Zoho that speaks Zoho's HTTP shapes.

Zoho's accounts server, Books v3 and Inventory v1 lists, single reads and item images, with Zoho's
limits and error answers, and a control API (``/_sim/``) for tests. One process, state in memory, objects
generated deterministically from ``--seed`` at start; everything per entity comes from the registry
(``tds_daemon.entities``). URLs, modules, and which of Zoho's behaviours are confirmed and which are not:
docs/ARCHITECTURE.md, "The Zoho simulator".
"""
