"""The bank: a LanceDB database of classes, support images, prototypes and vocabularies.

Tables are built from ``schemas/bank.json``. Every write makes a new Lance table version, and
every operation appends one row to the ``log`` table carrying the table versions after it: that
row's ``version`` is the bank version that ``protodb history`` lists. A prototype set becomes
visible only when its row in ``sets`` (the completion record) lands, after all its prototype and
cell rows.

Readers always check out the latest committed version of a table before reading, so handles
opened earlier see other processes' commits.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa

from protodb.errors import BankError, NotFoundError

SCHEMA_VERSION = 1
CORE_TABLES = ("meta", "classes", "supports", "masks", "cells", "sets", "vocabs", "log")


@cache
def schema_spec() -> dict[str, Any]:
    """The parsed ``schemas/bank.json``."""
    text = resources.files("protodb.schemas").joinpath("bank.json").read_text("utf-8")
    return json.loads(text)


def _arrow_type(name: str, dim: int | None, vector_dtype: str) -> pa.DataType:
    simple = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "binary": pa.binary(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "list<string>": pa.list_(pa.string()),
    }
    if name == "vector":
        if not dim:
            raise ValueError("a vector column needs its dimension")
        return pa.list_(pa.float16() if vector_dtype == "float16" else pa.float32(), dim)
    return simple[name]


def table_schema(table: str, dim: int | None = None, vector_dtype: str = "float16") -> pa.Schema:
    """The Arrow schema of a bank table (``prototypes*`` tables need ``dim``)."""
    spec = schema_spec()["tables"]
    fields = spec["prototypes*" if table.startswith("prototypes") else table]
    return pa.schema(
        [pa.field(f["name"], _arrow_type(f["type"], dim, vector_dtype)) for f in fields],
        metadata={"protodb.schema_version": str(SCHEMA_VERSION)},
    )


def prototype_table_name(extractor_id: str) -> str:
    return "prototypes__" + extractor_id.replace("-", "_")


def sql_str(value: str) -> str:
    """A SQL string literal for Lance filters."""
    return "'" + str(value).replace("'", "''") + "'"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error
        return "unknown"


@dataclass(frozen=True)
class SetKey:
    """The key of a prototype set: (class, generator, seed, extractor)."""

    class_key: str
    generator_id: str
    seed: int
    extractor_id: str

    def where(self) -> str:
        return (
            f"class_key = {sql_str(self.class_key)} AND generator_id = {sql_str(self.generator_id)}"
            f" AND seed = {int(self.seed)} AND extractor_id = {sql_str(self.extractor_id)}"
        )


@dataclass(frozen=True)
class LogEntry:
    """One bank version: the operation that made it and the table versions after it."""

    version: int
    op: str
    detail: dict
    versions: dict[str, int]
    user: str
    created_at: dt.datetime


class Bank:
    """A protodb bank at a LanceDB URI (a local directory or s3://, gs://, az://).

    Open with :func:`open_bank`. ``create=False`` refuses to create a missing bank.
    """

    def __init__(self, uri: str, *, create: bool = True) -> None:
        import os

        import lancedb

        self.uri = uri
        if not create and "://" not in uri and not os.path.isdir(uri):
            raise NotFoundError(
                f"no protodb bank at {uri!r}; create one with `protodb --bank {uri} add CLASS`"
            )
        try:
            self.db = lancedb.connect(uri)
        except Exception as err:  # noqa: BLE001 - any failure here is a bad location
            raise BankError(
                f"cannot open bank {uri!r}: {err}; check --bank / PROTODB_BANK"
            ) from None
        self._handles: dict[str, Any] = {}
        exists = self._exists("meta")
        if not exists and not create:
            raise NotFoundError(
                f"no protodb bank at {uri!r}; create one with `protodb --bank {uri} add CLASS`"
            )
        if exists:
            self._check_schema()
        else:
            self._init()

    # ------------------------------------------------------------------ tables

    def _init(self) -> None:
        for name in CORE_TABLES:
            if not self._exists(name):
                self.db.create_table(name, schema=table_schema(name))
        from protodb import __version__

        self.table("meta").add(
            pa.table(
                {
                    "key": ["schema_version", "created_at", "created_by", "protodb_version"],
                    "value": [str(SCHEMA_VERSION), now().isoformat(), _user(), __version__],
                },
                schema=table_schema("meta"),
            )
        )

    def _check_schema(self) -> None:
        meta = self.read("meta")
        values = dict(zip(meta["key"].to_pylist(), meta["value"].to_pylist(), strict=True))
        found = int(values.get("schema_version", "0"))
        if found > SCHEMA_VERSION:
            raise BankError(
                f"bank {self.uri!r} has schema version {found}, newer than this protodb "
                f"understands ({SCHEMA_VERSION}); upgrade protodb (pip install -U protodb)"
            )
        if found < SCHEMA_VERSION:
            raise BankError(
                f"bank {self.uri!r} has schema version {found}; this protodb needs "
                f"{SCHEMA_VERSION} and has no migration from it: re-create the bank"
            )

    def table(self, name: str, *, latest: bool = True):
        """An open handle on table ``name``, checked out at its latest version."""
        handle = self._handles.get(name)
        if handle is None:
            if not self._exists(name):
                raise NotFoundError(f"bank {self.uri!r} has no table {name!r}")
            handle = self._handles[name] = self.db.open_table(name)
        elif latest:
            handle.checkout_latest()
        return handle

    def ensure_prototype_table(self, extractor_id: str, dim: int, dtype: str) -> str:
        name = prototype_table_name(extractor_id)
        if not self._exists(name):
            self.db.create_table(name, schema=table_schema(name, dim, dtype))
        return name

    def table_names(self) -> list[str]:
        names, token = [], None
        while True:
            page = self.db.list_tables(page_token=token)
            names += list(page.tables)
            token = page.page_token
            if not token:
                return sorted(names)

    def _exists(self, name: str) -> bool:
        return name in self.table_names()

    def read(self, name: str, where: str | None = None, version: int | None = None) -> pa.Table:
        """Rows of a table (all columns) at its latest or a given version, optionally filtered."""
        handle = self.table(name)
        if version is not None and version != handle.version:
            handle.checkout(version)
            try:
                return handle.to_lance().to_table(filter=where)
            finally:
                handle.checkout_latest()
        return handle.to_lance().to_table(filter=where)

    def versions(self) -> dict[str, int]:
        """The latest version of every table."""
        return {name: int(self.table(name).version) for name in self.table_names()}

    # ------------------------------------------------------------------ writes

    def append(self, name: str, rows: pa.Table) -> None:
        if rows.num_rows:
            self.table(name).add(rows.cast(self.table(name).schema))

    def upsert_class(self, class_key: str, name: str, kind: str = "unknown", source: str = "none"):
        if self.read("classes", f"class_key = {sql_str(class_key)}").num_rows:
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

    def log(self, op: str, detail: dict) -> LogEntry:
        """Append a log row (a new bank version) recording the table versions now."""
        version = self.table("log").count_rows() + 1
        entry = LogEntry(version, op, detail, self.versions(), _user(), now())
        self.append(
            "log",
            pa.table(
                {
                    "version": [entry.version],
                    "op": [op],
                    "detail": [json.dumps(detail, sort_keys=True)],
                    "versions": [json.dumps(entry.versions, sort_keys=True)],
                    "user": [entry.user],
                    "created_at": [entry.created_at],
                }
            ),
        )
        return entry

    # ------------------------------------------------------------------ reads

    def find_set(self, key: SetKey) -> dict | None:
        """The completion record of a prototype set (a ``sets`` row as a dict), or None."""
        rows = self.read("sets", key.where()).to_pylist()
        return rows[0] if rows else None

    def has_set(self, key: SetKey) -> bool:
        return self.find_set(key) is not None

    def sets(self, class_key: str | None = None) -> pa.Table:
        where = None if class_key is None else f"class_key = {sql_str(class_key)}"
        return self.read("sets", where)

    def classes(self) -> pa.Table:
        return self.read("classes")

    def supports(self, class_key: str, generator_id: str, seed: int) -> pa.Table:
        return self.read(
            "supports",
            f"class_key = {sql_str(class_key)} AND generator_id = {sql_str(generator_id)}"
            f" AND seed = {int(seed)}",
        )

    def history(self) -> list[LogEntry]:
        rows = self.read("log").to_pylist()
        rows.sort(key=lambda r: r["version"])
        return [
            LogEntry(
                version=r["version"],
                op=r["op"],
                detail=json.loads(r["detail"]),
                versions=json.loads(r["versions"]),
                user=r["user"],
                created_at=r["created_at"],
            )
            for r in rows
        ]


def open_bank(uri: str, *, create: bool = True) -> Bank:
    """Open (and by default create) the bank at ``uri``."""
    return Bank(uri, create=create)


def vectors_to_arrow(vectors: np.ndarray, dtype: str) -> pa.FixedSizeListArray:
    """float [P, D] -> a fixed-size-list Arrow array of ``dtype`` ("float16" or "float32")."""
    flat = np.ascontiguousarray(vectors.astype(np.float16 if dtype == "float16" else np.float32))
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), vectors.shape[1])


def arrow_to_vectors(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A fixed-size-list vector column -> float32 [P, D]."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32).reshape(-1, dim)
