"""The rules of the data checks, as data, and the one SQL statement each rule becomes.

Per-entity behaviour lives in the tables below (``REFERENCES``, ``TOTALS``, ``STOCK``, ``NON_NEGATIVE``) and in the
entity registry (typed columns, line items); the builders turn each row of them into one bounded statement over the
live rows (``deleted_at IS NULL``). Every statement returns ``zoho_id``, ``label`` (the row's first typed column: its
number or name, for a person), the rule's own columns and ``total`` (every finding of the rule, before the limit).

Values inside ``raw`` are read with guarded casts (``_num``, ``_ts``), so a value that is not a number or a
timestamp makes a finding rather than an error. Field names in the tables are this module's constants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import TextClause

from tds_daemon import entities
from tds_daemon.entities import Column, EntitySpec
from tds_daemon.zohovalues import REPLACEMENT

CHECKS = ("orphans", "products", "integrity")
FUTURE_SKEW = "5 minutes"  # a last-modified time this far ahead of the database's clock is in the future
TOTAL_TOLERANCE = "0.005"  # half a cent: Zoho rounds each line and the total to 2 decimals


@dataclass(frozen=True)
class Reference:
    """A live ``source`` row names a ``target`` row in ``field`` (in each element of the array ``array`` when
    set); the target must be held by TDS and live."""

    source: str
    field: str
    target: str
    array: str | None = None

    @property
    def name(self) -> str:
        return f"{self.array}[].{self.field}" if self.array else self.field


@dataclass(frozen=True)
class Total:
    """``field`` of a document must equal the sum of ``amount`` over its ``lines``."""

    entity: str
    field: str
    lines: str = "line_items"
    amount: str = "item_total"


@dataclass(frozen=True)
class Stock:
    """A product's typed ``column`` must equal the sum of ``field`` over the elements of ``raw[array]``."""

    column: str
    array: str
    field: str


REFERENCES: tuple[Reference, ...] = (
    Reference("invoice", "customer_id", "customer"),
    Reference("sales_order", "customer_id", "customer"),
    Reference("payment", "customer_id", "customer"),
    Reference("credit_note", "customer_id", "customer"),
    Reference("sales_return", "customer_id", "customer"),
    Reference("bill", "vendor_id", "vendor"),
    Reference("sales_return", "salesorder_id", "sales_order"),
    Reference("payment", "invoice_id", "invoice", array="invoices"),
    # Every document whose whole object carries line items: each line's item.
    *(Reference(e.name, "item_id", "product", array="line_items") for e in entities.ENTITIES
      if "line_items" in e.detail_fields),
)
TOTALS: tuple[Total, ...] = (
    Total("invoice", "sub_total"), Total("sales_order", "sub_total"), Total("bill", "sub_total"),
    Total("credit_note", "sub_total"), Total("sales_return", "total"),
)
STOCK: tuple[Stock, ...] = (
    Stock("stock_on_hand", "warehouses", "warehouse_stock_on_hand"),
    Stock("available_stock", "warehouses", "warehouse_available_stock"),
    Stock("stock_on_hand", "locations", "location_stock_on_hand"),
    Stock("available_stock", "locations", "location_available_stock"),
)
NON_NEGATIVE = ("rate", "purchase_rate")  # product columns
REQUIRED = ("name", "sku")  # product columns a live product must have

_NUMBER = r"'^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$'"
_TIMESTAMP = (r"'^\s*\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?"
              r"\s*(Z|[-+]\d\d:?\d\d)\s*$'")
_Q = postgresql.dialect().identifier_preparer


@dataclass(frozen=True)
class Rule:
    check: str
    name: str
    entity: str
    sql: TextClause
    describe: Callable[[dict], str]  # the row → what is wrong, for a person

    @property
    def key(self) -> str:
        return f"{self.entity}.{self.name}"


def _n(value) -> str:
    """A number as a person writes it: 10, not 10.000000."""
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _num(expr: str) -> str:
    """``expr`` (text) as numeric, NULL when it is not a number (thousands separators allowed, as on write)."""
    bare = f"replace({expr}, ',', '')"
    return f"(CASE WHEN {bare} ~ {_NUMBER} THEN {bare}::numeric END)"


def _ts(expr: str) -> str:
    """``expr`` (text) as timestamptz, NULL unless it looks like a Zoho timestamp with an offset."""
    return f"(CASE WHEN {expr} ~ {_TIMESTAMP} THEN replace(btrim({expr}), ' ', 'T')::timestamptz END)"


def _elements(expr: str) -> str:
    """The elements of a JSONB array (none when ``expr`` is absent or not an array)."""
    return f"jsonb_array_elements(CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} END)"


def _table(schema: str, entity: str) -> str:
    return f"{_Q.quote(schema)}.{_Q.quote(entities.get(entity).table)}"


def _label(spec: EntitySpec, alias: str) -> str:
    return f"{alias}.{_Q.quote(spec.columns[0].name)}::text"


def _select(schema: str, entity: str, columns: str, rest: str, order: str = "t.zoho_id") -> TextClause:
    """The common frame: live rows of one table ``t``, the rule's columns, the total, the first ``:limit``."""
    spec = entities.get(entity)
    return text(f"SELECT t.zoho_id, {_label(spec, 't')} AS label, {columns}, count(*) OVER () AS total "
                f"FROM {_table(schema, entity)} t {rest} ORDER BY {order} LIMIT :limit")


def _typed(spec: EntitySpec, column: Column) -> tuple[str, str]:
    """(the typed column as text, whether it differs from the raw value ``r.<field>``), as the write converts."""
    col, raw = f"t.{_Q.quote(column.name)}", f"r.{_Q.quote(column.field)}"
    differs = {
        "text": f"{col} IS DISTINCT FROM NULLIF({raw}, '')",
        "numeric": f"{col} IS DISTINCT FROM round({_num(raw)}, 6)",
        "date": f"to_char({col}, 'YYYY-MM-DD') IS DISTINCT FROM NULLIF(left(btrim({raw}), 10), '')",
        "timestamptz": f"{col} IS DISTINCT FROM {_ts(raw)}",
        "boolean": f"{col} IS DISTINCT FROM (CASE WHEN lower({raw}) IN ('true', '1', 'yes') THEN true "
                   f"WHEN lower({raw}) IN ('false', '0', 'no') THEN false END)",
    }[column.type]
    return f"{col}::text", differs


def _compared_columns(spec: EntitySpec) -> list[Column]:
    cols = list(spec.columns)
    if spec.last_modified:
        cols.append(Column("zoho_last_modified", "timestamptz", spec.last_modified))
    return cols


def _orphan(schema: str, ref: Reference) -> Rule:
    src, target = entities.get(ref.source), entities.get(ref.target)
    typed = {c.field: c.name for c in src.columns}
    if ref.array:
        refs = f"SELECT DISTINCT e->>{_lit(ref.field)} AS ref FROM {_elements('t.raw->' + _lit(ref.array))} e"
    elif ref.field in typed:
        refs = f"SELECT t.{_Q.quote(typed[ref.field])} AS ref"
    else:
        refs = f"SELECT t.raw->>{_lit(ref.field)} AS ref"
    sql = _select(schema, ref.source, "r.ref, x.zoho_id IS NOT NULL AS deleted",
                  f"CROSS JOIN LATERAL ({refs}) r LEFT JOIN {_table(schema, ref.target)} x ON x.zoho_id = r.ref "
                  "WHERE t.deleted_at IS NULL AND btrim(r.ref) <> '' "
                  "AND (x.zoho_id IS NULL OR x.deleted_at IS NOT NULL)",
                  "t.zoho_id, r.ref")
    where = f"{ref.array} names" if ref.array else "names"
    return Rule("orphans", ref.name, ref.source, sql, lambda row: (
        f"{where} {target.name} {row['ref']} ({ref.field}), which TDS "
        + ("holds only as deleted" if row["deleted"] else "does not hold")))


def _product_rules(schema: str) -> list[Rule]:
    table = _table(schema, "product")
    live = "WHERE t.deleted_at IS NULL"
    rules = [Rule("products", "duplicate_sku", "product", _select(
        schema, "product", "t.sku, d.n, d.ids",
        f"JOIN (SELECT sku, count(*) AS n, (array_agg(zoho_id ORDER BY zoho_id))[1:5] AS ids FROM {table} "
        "WHERE deleted_at IS NULL AND btrim(sku) <> '' GROUP BY sku HAVING count(*) > 1) d ON d.sku = t.sku "
        + live, "t.sku, t.zoho_id"),
        lambda row: f"SKU {row['sku']!r} is shared by {row['n']} live products ({', '.join(row['ids'])}"
                    f"{', …' if row['n'] > len(row['ids']) else ''})")]
    for col in REQUIRED:
        rules.append(Rule("products", f"missing_{col}", "product", _select(
            schema, "product", "NULL AS value", f"{live} AND coalesce(btrim(t.{_Q.quote(col)}), '') = ''"),
            lambda row, col=col: f"has no {col}"))
    for col in NON_NEGATIVE:
        rules.append(Rule("products", f"negative_{col}", "product", _select(
            schema, "product", f"t.{_Q.quote(col)} AS value", f"{live} AND t.{_Q.quote(col)} < 0"),
            lambda row, col=col: f"{col} is negative ({_n(row['value'])})"))
    for s in STOCK:
        rules.append(Rule("products", f"{s.column}_vs_{s.array}", "product", _select(
            schema, "product", f"t.{_Q.quote(s.column)} AS stock, w.stock AS summed, w.n",
            f"CROSS JOIN LATERAL (SELECT sum({_num('e->>' + _lit(s.field))}) AS stock, count(*) AS n, "
            f"count({_num('e->>' + _lit(s.field))}) AS m FROM {_elements('t.raw->' + _lit(s.array))} e) w "
            f"{live} AND t.detail_state = 'current' AND w.m > 0 AND t.{_Q.quote(s.column)} IS DISTINCT FROM w.stock"),
            lambda row, s=s: f"{s.column} is {_n(row['stock'])} but its {row['n']} {s.array} add up to "
                                 f"{_n(row['summed'])}"))
    return rules


def _integrity_rules(schema: str) -> list[Rule]:
    rules = []
    for spec in entities.ENTITIES:
        cols = _compared_columns(spec)
        record = ", ".join(f"{_Q.quote(f)} text" for f in dict.fromkeys(c.field for c in cols))
        compared = [(c, *_typed(spec, c)) for c in cols]
        values = ", ".join(f"({_lit(c.name)}, {_lit(c.field)}, {typed}, r.{_Q.quote(c.field)}, {differs})"
                           for c, typed, differs in compared)
        # The rows that differ anywhere, found first: only they are taken apart column by column.
        anywhere = " OR ".join(f"({differs})" for _, _, differs in compared)
        rules.append(Rule("integrity", "typed_column", spec.name, _select(
            schema, spec.name, "d.col, d.field, d.typed, d.raw_value",
            f"CROSS JOIN LATERAL jsonb_to_record(t.raw) AS r({record}) "
            f"CROSS JOIN LATERAL (VALUES {values}) AS d(col, field, typed, raw_value, differs) "
            f"WHERE t.deleted_at IS NULL AND ({anywhere}) AND d.differs", "t.zoho_id, d.col"),
            lambda row: f"column {row['col']} holds {row['typed']!r} but raw.{row['field']} is {row['raw_value']!r}"))
        rules.append(Rule("integrity", "replaced_text", spec.name, _select(
            schema, spec.name, "NULL AS value",
            f"WHERE t.deleted_at IS NULL AND strpos(t.raw::text, {_lit(REPLACEMENT)}) > 0"),
            lambda row: "raw holds U+FFFD: Zoho sent text PostgreSQL cannot store there (a NUL character or a "
                        "lone surrogate), stored replaced; correct it in Zoho and the next change brings it"))
        if spec.last_modified:
            rules.append(Rule("integrity", "future_modified", spec.name, _select(
                schema, spec.name, "t.zoho_last_modified::text AS modified",
                f"WHERE t.deleted_at IS NULL AND t.zoho_last_modified > now() + interval {_lit(FUTURE_SKEW)}",
                "t.zoho_last_modified DESC, t.zoho_id"),
                lambda row: f"zoho_last_modified {row['modified']} is in the future"))
    for tot in TOTALS:
        stated = _num(f"t.raw->>{_lit(tot.field)}")
        amount = _num("e->>" + _lit(tot.amount))
        rules.append(Rule("integrity", f"{tot.field}_vs_{tot.lines}", tot.entity, _select(
            schema, tot.entity, f"{stated} AS stated, l.summed, l.n",
            f"CROSS JOIN LATERAL (SELECT sum({amount}) AS summed, count(*) AS n, count({amount}) AS m "
            f"FROM {_elements('t.raw->' + _lit(tot.lines))} e) l WHERE t.deleted_at IS NULL AND "
            f"t.detail_state = 'current' AND l.n > 0 AND l.m = l.n AND abs({stated} - l.summed) > {TOTAL_TOLERANCE}"),
            lambda row, tot=tot: f"{tot.field} is {_n(row['stated'])} but its {row['n']} {tot.lines} add "
                                 f"up to {_n(row['summed'])} ({tot.amount})"))
    return rules


@lru_cache(maxsize=8)
def rules(schema: str) -> dict[str, tuple[Rule, ...]]:
    """Every rule of every check, built once per entity schema."""
    return {"orphans": tuple(_orphan(schema, r) for r in REFERENCES),
            "products": tuple(_product_rules(schema)),
            "integrity": tuple(_integrity_rules(schema))}
