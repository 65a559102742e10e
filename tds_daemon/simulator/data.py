"""Deterministic Zoho-shaped objects: the same seed and counts give the same objects, byte for byte.

Every entity comes from the registry (``tds_daemon.entities.ENTITIES``): its id field, its
last-modified field, its ``list_params`` (``contact_type`` of customers and vendors) and its typed
columns. What differs per entity is only *sample content*, a table of generators keyed by entity
name (``samples.SAMPLES``); an entity without one gets generic values for its typed columns, so a
newly registered entity is served without touching ``samples.py``. Whatever a generator leaves out
that a typed column reads is filled generically too: list rows always carry every column TDS stores.

Objects look like Zoho's: 19-digit string ids, ``2025-11-13T08:40:00+0300`` timestamps, numbers as
JSON numbers, Arabic and English names, line items on documents, items with per-warehouse
``locations`` and image fields (``images.py``: about 60 % have an image, the rest empty strings).
List rows leave out the heavy parts (``DETAIL_ONLY``) as Zoho's list APIs do; the single-object
read returns everything.
"""

from __future__ import annotations

import random

from tds_daemon import entities
from tds_daemon.entities import EntitySpec
from tds_daemon.simulator.samples import SAMPLES, Ctx
from tds_daemon.simulator.vocabulary import WAREHOUSES
from tds_daemon.simulator.zohotime import DATA_END, from_epoch

# Keys only the single-object read carries (Zoho's list APIs return a flatter row).
DETAIL_ONLY = frozenset({"line_items", "locations", "contact_persons", "billing_address", "shipping_address",
                         "pricebook_items", "invoices"})

SPAN_S = 730 * 86400  # generated objects were created within the two years before DATA_END

_INDEX = {e.name: i + 1 for i, e in enumerate(entities.ENTITIES)}
_SUB_INDEX = 98  # line items, contact persons
_LOCATION_INDEX = 99


def _generic(c: Ctx, column: entities.Column) -> object:
    if column.type == "numeric":
        return round(c.rng.uniform(1, 1000), 2)
    if column.type == "date":
        return c.date.isoformat()
    if column.type == "timestamptz":
        return from_epoch(c.created)
    if column.type == "boolean":
        return c.rng.random() < 0.5
    return f"{c.spec.name} {column.field} {c.serial}"


class Factory:
    """Makes objects. One per data set: it owns the id counters and the names already used."""

    def __init__(self, seed: int, *, last_modified_everywhere: bool = False):
        self.seed = seed
        self.lm_everywhere = last_modified_everywhere
        root = random.Random(f"tds-sim:{seed}")
        self.prefix = root.randrange(1_000_000, 10_000_000)  # 7 digits: ids are 19 digits
        self.counters: dict[int, int] = {}
        self.serials: dict[str, int] = {}
        self.names: dict[str, set[str]] = {}
        self.roles: dict[str, str] = {}
        self.images: dict = {}  # images.py's: the shared image's fields, images changed so far
        self.locations = [{"location_id": self._id(_LOCATION_INDEX, root), "location_name": en, "status": "active",
                           "is_primary": i == 0} for i, en in enumerate(WAREHOUSES)]

    # --- ids and names ---
    def _id(self, index: int, rng: random.Random) -> str:
        n = self.counters.get(index, 0) + rng.randint(1, 7)
        self.counters[index] = n
        return f"{self.prefix}00{index:02d}{n:08d}"

    def sub_id(self, rng: random.Random) -> str:
        return self._id(_SUB_INDEX, rng)

    def role_id(self, role: str) -> str:
        if role not in self.roles:
            self.roles[role] = self._id(_SUB_INDEX, random.Random(f"tds-sim:{self.seed}:role:{role}"))
        return self.roles[role]

    def unique(self, kind: str, name: str) -> str:
        used = self.names.setdefault(kind, set())
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name} {n}"
        used.add(candidate)
        return candidate

    def last_modified_field(self, spec: EntitySpec) -> str | None:
        # Where the registry says the field may be absent (price lists, users, branches), the simulator
        # leaves it out unless told otherwise: TDS must work either way.
        if spec.last_modified and (spec.modified_always or self.lm_everywhere):
            return spec.last_modified
        return None

    # --- objects ---
    def make(self, spec: EntitySpec, rng: random.Random, created: int, modified: int,
             refs: dict[str, list[dict]], fields: dict | None = None) -> dict:
        serial = self.serials.get(spec.name, 0) + 1
        self.serials[spec.name] = serial
        ctx = Ctx(spec, rng, serial, created, refs, self)
        obj: dict = {spec.id_field: self._id(_INDEX.get(spec.name, 97), rng)}
        sample = SAMPLES.get(spec.name)
        if sample is not None:
            obj.update(sample(ctx))
        for column in spec.columns:  # every typed column has something to read
            if column.field not in obj and column.field != spec.last_modified:
                obj[column.field] = _generic(ctx, column)
        obj.update(dict(spec.list_params))
        lm_field = self.last_modified_field(spec)
        if lm_field:
            obj["created_time"] = from_epoch(created)
            obj[lm_field] = from_epoch(modified)
        if fields:
            obj.update(fields)
        return obj

    def generate(self, counts: dict[str, int]) -> dict[str, list[dict]]:
        """Every registry entity's objects, in registry order (later ones reference earlier ones)."""
        refs: dict[str, list[dict]] = {}
        end = int(DATA_END.timestamp())
        for spec in entities.ENTITIES:
            rng = random.Random(f"tds-sim:{self.seed}:{spec.name}")
            objs = []
            for _ in range(counts.get(spec.name, 0)):
                created = end - rng.randint(86400, SPAN_S)
                modified = created if rng.random() < 0.35 else created + rng.randint(0, end - created)
                objs.append(self.make(spec, rng, created, modified, refs))
            refs[spec.name] = objs
        return refs

    def new(self, spec: EntitySpec, refs: dict[str, list[dict]], now: int, fields: dict | None = None) -> dict:
        """An object created at run time (control API): generated content, ``fields`` on top."""
        serial = self.serials.get(spec.name, 0) + 1
        rng = random.Random(f"tds-sim:{self.seed}:{spec.name}:new:{serial}")
        return self.make(spec, rng, now, now, refs, fields)


def list_row(obj: dict) -> dict:
    """The row a list API returns for ``obj``: everything but the heavy detail parts."""
    return {k: v for k, v in obj.items() if k not in DETAIL_ONLY}
