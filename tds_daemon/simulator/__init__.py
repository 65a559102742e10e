"""``tds simulator``: a local stand-in for Zoho that speaks Zoho's HTTP shapes.

One process, state in memory, objects generated deterministically from ``--seed`` at start.
Everything per entity comes from the registry (``tds_daemon.entities``).

URL layout (base ``http://127.0.0.1:8090`` by default; point ``zoho.accounts_url`` at the base,
``zoho.books_url`` at ``<base>/books/v3`` and ``zoho.inventory_url`` at ``<base>/inventory/v1``):

- ``POST /oauth/v2/token``: the accounts server (``grant_type=refresh_token``); see ``tokens.py``.
- ``GET /books/v3/<list path>[/<id>]``, ``GET /inventory/v1/<list path>[/<id>]``: each entity at the
  app the registry names (and, for entities Zoho serves from both, at the other one too), with
  ``Authorization: Zoho-oauthtoken <token>`` and ``?organization_id=``; see ``app.py``.
- ``GET /inventory/v1/items/<id>/image``: an item's image, real PNG or JPEG bytes; see ``images.py``.
- ``GET /<app>/organizations``: the simulated organization.
- ``/_sim/...``: the control API (truth for tests, faults, changes, webhooks); see ``control.py``.

Modules, one noun each: ``settings`` (what it starts with), ``data`` (objects), ``images`` (item
images: fields and bytes), ``store`` (state), ``tokens`` (OAuth), ``limits`` (429s), ``faults``,
``stats``, ``errors`` (Zoho's error answers and where each was confirmed), ``webhooks``, ``sim``
(the whole state), ``app`` and ``control`` (HTTP), ``server`` (threaded WSGI).

What was checked against public material, and what was not:

- confirmed (Zoho docs): envelope ``{"code": 0, "message": "success", "<list key>": [...],
  "page_context": {"page", "per_page", "has_more_page", "report_name", "applied_filter",
  "sort_column", "sort_order"}}``; the get envelope under the object key; HTTP 401/404/405/429/500;
  ``{"code": 1002, "message": "Invoice does not exist."}``; ``{"code": 1000, "message": "Internal
  error"}``; ``sort_column=last_modified_time`` on List Contacts; 100 requests/min per organization.
- observed by third parties (not in Zoho's docs): 401 code 14 (no token) / code 57 (dead token);
  429 code 44 (per minute) / 45 (per day) / 1070 (calls in flight); token errors answered HTTP 200 ``{"error":
  "invalid_client"}`` etc.; the 400 "Access Denied ... too many requests continuously" body.
- *unconfirmed*, each a one-line change: ``Retry-After`` on 429; sliding vs clock-minute window;
  the refresh limit's exact numbers; codes for a missing (6042) or foreign (6041) organization and
  their HTTP status; 404 + code 1002 for every entity; a ``last_modified_time`` list filter; the
  ``contact_type`` list parameter; which entities the second app also serves (``sim.ALSO_SERVED``).
"""
