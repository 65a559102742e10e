"""The organization's objects, in memory, behind one lock.

Objects are never changed in place: a change replaces the stored dict, so a list answer built from
references taken under the lock can be serialized after the lock is released. Deleted objects are
removed (as in Zoho, whose list APIs never mention them) and kept aside as tombstones so that a
``deleted`` webhook can still carry the last state and tests can ask what was deleted.
"""

from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass

from tds_daemon import entities
from tds_daemon.entities import EntitySpec
from tds_daemon.simulator.data import Factory
from tds_daemon.simulator.zohotime import epoch, from_epoch
from tds_daemon.zohovalues import InvalidValue

# (seed, volumes, last_modified_everywhere) → the pickled factory and objects it generated: a reset to data
# generated before (the tests reset before each test) copies it instead of generating it again.
_GENERATED: dict[tuple, bytes] = {}
_GENERATED_MAX = 4


def _generate(seed: int, volumes: dict[str, int], last_modified_everywhere: bool) -> tuple[Factory, dict]:
    """A factory for ``seed`` and the objects it generates for ``volumes``, as new objects every time."""
    key = (seed, tuple(sorted(volumes.items())), last_modified_everywhere)
    blob = _GENERATED.get(key)
    if blob is None:
        factory = Factory(seed, last_modified_everywhere=last_modified_everywhere)
        blob = pickle.dumps((factory, factory.generate(volumes)), protocol=pickle.HIGHEST_PROTOCOL)
        while len(_GENERATED) >= _GENERATED_MAX:
            _GENERATED.pop(next(iter(_GENERATED)))
        _GENERATED[key] = blob
    return pickle.loads(blob)


@dataclass(frozen=True)
class Meta:
    seq: int  # arrival order: the order of objects that have no timestamps
    created: float | None
    modified: float | None


def _value_key(value: object) -> tuple:
    """Any JSON value → a key comparable with any other (numbers, then text, then the rest)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    if isinstance(value, str):
        return (1, 0.0, value.casefold())
    return (2, 0.0, "" if value is None else str(value))


class Store:
    def __init__(self, seed: int, volumes: dict[str, int], *, last_modified_everywhere: bool = False):
        self.lock = threading.RLock()
        self.load(seed, volumes, last_modified_everywhere=last_modified_everywhere)

    def load(self, seed: int, volumes: dict[str, int], *, last_modified_everywhere: bool = False) -> None:
        factory, generated = _generate(seed, volumes, last_modified_everywhere)
        with self.lock:
            self.factory, self.seed, self._seq = factory, seed, 0
            self.objects: dict[str, dict[str, dict]] = {e.name: {} for e in entities.ENTITIES}
            self.meta: dict[str, dict[str, Meta]] = {e.name: {} for e in entities.ENTITIES}
            self.deleted: dict[str, dict[str, dict]] = {e.name: {} for e in entities.ENTITIES}
            for spec in entities.ENTITIES:
                for obj in generated.get(spec.name, []):
                    self._put(spec, obj)

    # --- internals (lock held) ---
    def _meta(self, spec: EntitySpec, obj: dict, seq: int) -> Meta:
        lm_field = self.factory.last_modified_field(spec)

        def stamp(field: str | None) -> float | None:
            value = obj.get(field) if field else None
            if not value:
                return None
            try:
                return epoch(value)
            except InvalidValue:
                return None
        return Meta(seq, stamp("created_time"), stamp(lm_field))

    def _put(self, spec: EntitySpec, obj: dict, seq: int | None = None) -> None:
        if seq is None:
            self._seq += 1
            seq = self._seq
        oid = str(obj[spec.id_field])
        self.objects[spec.name][oid] = obj
        self.meta[spec.name][oid] = self._meta(spec, obj, seq)

    def _refs(self) -> dict[str, list[dict]]:
        return {name: list(objs.values()) for name, objs in self.objects.items()}

    # --- reads ---
    def get(self, spec: EntitySpec, oid: str) -> dict | None:
        with self.lock:
            return self.objects[spec.name].get(oid)

    def count(self, spec: EntitySpec) -> int:
        with self.lock:
            return len(self.objects[spec.name])

    def has_field(self, specs: list[EntitySpec], field: str) -> bool:
        with self.lock:
            for spec in specs:
                for obj in self.objects[spec.name].values():
                    return field in obj
        return True  # nothing to sort: any column is as good as another

    def select(self, specs: list[EntitySpec], *, sort_column: str, descending: bool,
               since: float | None) -> list[dict]:
        """Objects of ``specs`` (merged), modified at or after ``since`` where they have a
        last-modified time, sorted by ``sort_column`` with the id breaking ties."""
        rows: list[tuple] = []
        with self.lock:
            for spec in specs:
                lm_field = self.factory.last_modified_field(spec)
                meta = self.meta[spec.name]
                for oid, obj in self.objects[spec.name].items():
                    m = meta[oid]
                    if since is not None and m.modified is not None and m.modified < since:
                        continue
                    if sort_column == lm_field:
                        key = m.modified if m.modified is not None else float(m.seq)
                    elif sort_column == "created_time":
                        key = m.created if m.created is not None else float(m.seq)
                    else:
                        key = _value_key(obj.get(sort_column))
                    rows.append((key, oid, obj))
        rows.sort(key=lambda r: (r[0], r[1]), reverse=descending)
        return [r[2] for r in rows]

    def truth(self, spec: EntitySpec) -> dict:
        """Ids and last-modified times, for tests to compare against what TDS stored."""
        lm_field = self.factory.last_modified_field(spec)
        with self.lock:
            rows = sorted(self.objects[spec.name].items(), key=lambda kv: self.meta[spec.name][kv[0]].seq)
            deleted = list(self.deleted[spec.name])
        return {"entity": spec.name, "id_field": spec.id_field, "last_modified_field": lm_field, "count": len(rows),
                "objects": [{"id": oid, "last_modified_time": obj.get(lm_field) if lm_field else None}
                            for oid, obj in rows],
                "deleted": deleted}

    def tombstone(self, spec: EntitySpec, oid: str) -> dict | None:
        with self.lock:
            return self.deleted[spec.name].get(oid)

    # --- changes ---
    def create(self, spec: EntitySpec, fields: dict, now: int) -> dict:
        with self.lock:
            obj = self.factory.new(spec, self._refs(), now, fields)
            oid = str(obj[spec.id_field])
            if oid in self.objects[spec.name]:
                raise ValueError(f"{spec.name} {oid} exists")
            obj[spec.id_field] = oid
            self.deleted[spec.name].pop(oid, None)
            self._put(spec, obj)
            return obj

    def modify(self, spec: EntitySpec, oid: str, fields: dict, now: int) -> dict:
        """Fields replaced as given; the last-modified time moves to now, and always forward (one
        second past the previous value at least, so two quick changes never share a timestamp),
        unless ``fields`` sets it explicitly."""
        with self.lock:
            old = self.objects[spec.name].get(oid)
            if old is None:
                raise KeyError(oid)
            new = {**old, **fields, spec.id_field: old[spec.id_field]}
            lm_field = self.factory.last_modified_field(spec)
            if lm_field and lm_field not in fields:
                previous = self.meta[spec.name][oid].modified
                new[lm_field] = from_epoch(max(now, int(previous) + 1) if previous is not None else now)
            self._put(spec, new, seq=self.meta[spec.name][oid].seq)
            return new

    def delete(self, spec: EntitySpec, oid: str) -> dict:
        with self.lock:
            obj = self.objects[spec.name].pop(oid, None)
            if obj is None:
                raise KeyError(oid)
            del self.meta[spec.name][oid]
            self.deleted[spec.name][oid] = obj
            return obj
