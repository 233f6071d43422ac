"""Keyed writes: what makes ``add`` resumable and concurrent writers safe.

Support images, masks and classes are inserted by key (duplicates dropped inside the batch,
existing keys skipped under the commit lock); a prototype set lands as its rows, its cells and
last its completion record, under one fresh write id, so no half set is ever visible.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from protodb.bank.commit import retry_commit
from protodb.bank.rows import class_table, completed_record, sets_table
from protodb.bank.schema import SetKey, dedupe, prototype_table_name, sql_str


def insert_new(bank, name: str, rows: pa.Table, keys: Sequence[str]) -> int:
    """Keyed insert: drop rows whose ``keys`` repeat inside the batch (first wins) or exist
    in the table, append the rest in one commit. Returns the number of rows written."""
    bank.check_writable()
    rows = dedupe(rows, keys)
    if not rows.num_rows:
        return 0
    with bank.commit_lock():
        first = keys[0]
        values = pc.unique(rows.column(first)).to_pylist()
        lit = sql_str if pa.types.is_string(rows.schema.field(first).type) else str
        where = f"{first} IN ({', '.join(lit(v) for v in values)})"
        existing = bank.read(name, where, columns=list(keys))
        if existing.num_rows:
            seen = set(zip(*(existing.column(k).to_pylist() for k in keys), strict=True))
            mine = list(zip(*(rows.column(k).to_pylist() for k in keys), strict=True))
            rows = rows.filter(pa.array([k not in seen for k in mine]))
        bank.append(name, rows)
    return rows.num_rows


def upsert_class(bank, class_key: str, name: str, kind: str = "unknown", source: str = "none"):
    """Insert a class, or update its kind when the stored one is unknown / has no source and
    this call brings one."""
    bank.check_writable()
    with bank.commit_lock():
        rows = bank.read("classes", f"class_key = {sql_str(class_key)}").to_pylist()
        if rows:
            old = rows[0]
            if source != "none" and kind != "unknown" and old["kind_source"] == "none":
                tbl = bank.table("classes")
                retry_commit(
                    lambda: tbl.update(
                        where=f"class_key = {sql_str(class_key)}",
                        values={"kind": kind, "kind_source": source},
                    )
                )
            return
        bank.append("classes", class_table(class_key, name, kind, source))


def write_set(
    bank, key: SetKey, prototypes: pa.Table, cells: pa.Table, record: dict[str, Any]
) -> bool:
    """Commit one prototype set: its prototype rows, then its cell rows, then its completion
    record (the ``sets`` row that makes it visible), all under one fresh ``write_id``.

    ``prototypes`` / ``cells`` hold the table's columns except ``write_id``; ``record`` holds
    the ``sets`` columns except ``write_id``, ``row_start``, ``row_count``, ``row_meta``.
    Returns False (writing nothing) when the set already exists. The record's ``recipe_id``
    is the key's (set here when absent; ``recipe`` is the recipe's JSON)."""
    bank.check_writable()
    if record.setdefault("recipe_id", key.recipe_id) != key.recipe_id:
        raise ValueError(f"record recipe {record['recipe_id']} is not the key's {key}")
    table = prototype_table_name(key.extractor_id)
    write_id = uuid.uuid4().hex
    with bank.commit_lock():
        if bank.find_set(key) is not None:
            return False
        tbl = bank.table(table)
        before = tbl.to_lance()
        start = before.count_rows()
        ids = pa.array([write_id] * len(prototypes), pa.string())
        prototypes = prototypes.append_column("write_id", ids)
        bank.append(table, prototypes)
        # the rows sit at [start, start + n) only if no other commit came in between
        row_start = start if int(tbl.version) == int(before.version) + 1 else -1
        bank.append("cells", cells.append_column("write_id", pa.array([write_id] * len(cells))))
        full = completed_record(
            record, write_id=write_id, row_start=row_start, prototypes=prototypes
        )
        bank.append("sets", sets_table([full]))
    return True
