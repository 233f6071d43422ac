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
from protodb.bank.schema import (
    SetKey,
    dedupe,
    now,
    pack_row_meta,
    prototype_table_name,
    sql_str,
    table_schema,
)


class KeyedWrites:
    """Keyed writes, mixed into :class:`protodb.bank.store.Bank`."""

    def insert_new(self, name: str, rows: pa.Table, keys: Sequence[str]) -> int:
        """Keyed insert: drop rows whose ``keys`` repeat inside the batch (first wins) or exist
        in the table, append the rest in one commit. Returns the number of rows written."""
        self._check_writable()
        rows = dedupe(rows, keys)
        if not rows.num_rows:
            return 0
        with self.commit_lock():
            first = keys[0]
            values = pc.unique(rows.column(first)).to_pylist()
            lit = sql_str if pa.types.is_string(rows.schema.field(first).type) else str
            where = f"{first} IN ({', '.join(lit(v) for v in values)})"
            existing = self.read(name, where, columns=list(keys))
            if existing.num_rows:
                seen = set(zip(*(existing.column(k).to_pylist() for k in keys), strict=True))
                mine = list(zip(*(rows.column(k).to_pylist() for k in keys), strict=True))
                rows = rows.filter(pa.array([k not in seen for k in mine]))
            self.append(name, rows)
        return rows.num_rows

    def upsert_class(self, class_key: str, name: str, kind: str = "unknown", source: str = "none"):
        """Insert a class, or update its kind when the stored one is unknown / has no source and
        this call brings one."""
        self._check_writable()
        with self.commit_lock():
            rows = self.read("classes", f"class_key = {sql_str(class_key)}").to_pylist()
            if rows:
                old = rows[0]
                if source != "none" and kind != "unknown" and old["kind_source"] == "none":
                    tbl = self.table("classes")
                    retry_commit(
                        lambda: tbl.update(
                            where=f"class_key = {sql_str(class_key)}",
                            values={"kind": kind, "kind_source": source},
                        )
                    )
                return
            self.append(
                "classes",
                pa.table(
                    {
                        "class_key": [class_key],
                        "name": [name],
                        "kind": [kind],
                        "kind_source": [source],
                        "created_at": [now()],
                    }
                ),
            )

    def write_set(
        self, key: SetKey, prototypes: pa.Table, cells: pa.Table, record: dict[str, Any]
    ) -> bool:
        """Commit one prototype set: its prototype rows, then its cell rows, then its completion
        record (the ``sets`` row that makes it visible), all under one fresh ``write_id``.

        ``prototypes`` / ``cells`` hold the table's columns except ``write_id``; ``record`` holds
        the ``sets`` columns except ``write_id``, ``row_start``, ``row_count``, ``row_meta``.
        Returns False (writing nothing) when the set already exists. The record's ``recipe_id``
        is the key's (set here when absent; ``recipe`` is the recipe's JSON)."""
        self._check_writable()
        if record.setdefault("recipe_id", key.recipe_id) != key.recipe_id:
            raise ValueError(f"record recipe {record['recipe_id']} is not the key's {key}")
        table = prototype_table_name(key.extractor_id)
        write_id = uuid.uuid4().hex
        with self.commit_lock():
            if self.find_set(key) is not None:
                return False
            tbl = self.table(table)
            before = tbl.to_lance()
            start = before.count_rows()
            ids = pa.array([write_id] * len(prototypes), pa.string())
            prototypes = prototypes.append_column("write_id", ids)
            self.append(table, prototypes)
            # the rows sit at [start, start + n) only if no other commit came in between
            row_start = start if int(tbl.version) == int(before.version) + 1 else -1
            self.append("cells", cells.append_column("write_id", pa.array([write_id] * len(cells))))
            full = dict(record)
            full.update(
                write_id=write_id,
                row_start=row_start,
                row_count=prototypes.num_rows,
                row_meta=pack_row_meta(prototypes),
            )
            self.append("sets", pa.Table.from_pylist([full], schema=table_schema("sets")))
        return True
