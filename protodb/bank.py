"""The bank: a LanceDB database of classes, support images, prototypes and vocabularies.

Tables are built from ``schemas/bank.json``. Every write makes a new Lance table version, and
every operation appends one row to the ``log`` table carrying the table versions after it: that
row's ``version`` is the bank version that ``protodb history`` lists.

Crash safety and concurrency:

- A prototype set's rows carry a fresh ``write_id``; the set becomes visible only when its
  completion record (a ``sets`` row naming that ``write_id``) lands, after all its prototype and
  cell rows. Rows of an attempt killed before its record are orphans: no read returns them and
  ``protodb gc`` removes them.
- Keyed writes (:meth:`Bank.insert_new`, :meth:`Bank.write_set`, :meth:`Bank.upsert_class`) drop
  duplicates inside the batch, then check for existing keys and commit under the bank's commit
  lock, so several processes adding the same or different classes lose and duplicate nothing.
  The lock is a ``flock`` on a file in a local bank directory; object stores have no such lock
  (one writer at a time there, see the README). Lance commit conflicts are retried with backoff.
- Writers hold a shared "writer" lock for their whole operation; ``gc`` takes it exclusively and
  refuses to run while any writer is active.

Readers always check out the latest committed version of a table before reading, so handles
opened earlier see other processes' commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from protodb.errors import BankError, NeedsMigrationError, NotFoundError
from protodb.lance_direct import VectorReader

SCHEMA_VERSION = 2
CORE_TABLES = ("meta", "classes", "supports", "masks", "cells", "sets", "vocabs", "log")
COMMIT_LOCK = "_protodb_commit.lock"
WRITER_LOCK = "_protodb_writers.lock"
VOCAB_TAG_PREFIX = "vocab."
PROTOTYPE_STORAGE_VERSION = "2.0"
# prototype-table columns that are constant over a set (filled in from its key on fast loads)
SET_COLUMNS = ("class_key", "generator_id", "seed", "extractor_id")
# per-row columns packed into the set's ``row_meta`` (so a fast load reads only the vectors)
ROW_META = np.dtype(
    [("polarity", "u1"), ("level", "u1"), ("part", "<i4"), ("support", "<i4"), ("weight", "<f4")]
)
POLARITIES = ("fg", "bg")
LEVELS = ("class", "instance", "part")
T = TypeVar("T")


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


def vector_dtype(schema: pa.Schema) -> str:
    """The store dtype ("float16" or "float32") of a prototype table's vector column."""
    return "float16" if schema.field("vector").type.value_type == pa.float16() else "float32"


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


def local_path(uri: str) -> str | None:
    """The directory of a local bank URI (a path or file://...), None for an object store."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return None if "://" in uri else uri


def _is_conflict(err: Exception) -> bool:
    text = str(err).lower()
    return any(w in text for w in ("conflict", "retryable", "concurrent"))


def retry_commit(fn: Callable[[], T], *, attempts: int = 8, base_s: float = 0.05) -> T:
    """Run a Lance commit, retrying commit conflicts with exponential backoff and jitter."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - Lance raises plain OSError/RuntimeError
            if attempt == attempts - 1 or not _is_conflict(err):
                raise
            time.sleep(base_s * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


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

    Open with :func:`open_bank`. ``create=False`` refuses to create a missing bank. ``at`` opens
    the bank read-only as it was at that bank version (``protodb --at VERSION``). Object-store
    credentials come from the environment (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``), as LanceDB
    reads them.
    """

    def __init__(
        self, uri: str, *, create: bool = True, at: int | None = None, migrate: bool = True
    ) -> None:
        import lancedb

        self.uri = uri
        self._dir = local_path(uri)
        if not create and self._dir is not None and not os.path.isdir(self._dir):
            raise NotFoundError(
                f"no protodb bank at {uri!r}; create one with `protodb --bank {uri} add CLASS`"
            )
        try:
            if self._dir is not None and create:
                os.makedirs(self._dir, exist_ok=True)
            self.db = lancedb.connect(uri)
        except Exception as err:  # noqa: BLE001 - any failure here is a bad location
            raise BankError(
                f"cannot open bank {uri!r}: {err}; check --bank / PROTODB_BANK"
            ) from None
        self._handles: dict[str, Any] = {}
        self._datasets: dict[tuple[str, int], Any] = {}
        self._ranges: dict[tuple[int, str], tuple[pa.Table, pa.Array]] = {}
        self._checked: set[tuple] = set()  # ((table, version, sets_version), write_id) checked
        self._row_meta: dict[int, dict[str, bytes]] = {}
        self._vector_reader: VectorReader | None = VectorReader()
        self._migrate = migrate
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._at: dict[str, int] | None = None
        self.at: int | None = None
        exists = self._exists("meta")
        if not exists and not create:
            raise NotFoundError(
                f"no protodb bank at {uri!r}; create one with `protodb --bank {uri} add CLASS`"
            )
        if not exists:
            with self.commit_lock():
                if not self._exists("meta"):
                    self._init()
        self._check_schema()
        if at is not None:
            self._open_at(at)

    # ------------------------------------------------------------------ locks

    @contextlib.contextmanager
    def commit_lock(self) -> Iterator[None]:
        """Exclusive, re-entrant lock for a check-then-commit section (local banks only)."""
        if self._dir is None:
            yield
            return
        import fcntl

        if self._lock_depth == 0:
            fd = os.open(os.path.join(self._dir, COMMIT_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    @contextlib.contextmanager
    def writer(self, *, exclusive: bool = False, wait: bool = True) -> Iterator[None]:
        """Mark this process as an active writer for the block (shared lock; ``gc`` takes it
        exclusively). ``wait=False`` raises BankError instead of waiting."""
        self._check_writable()
        if self._dir is None:
            yield
            return
        import fcntl

        fd = os.open(os.path.join(self._dir, WRITER_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            try:
                fcntl.flock(fd, mode | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise BankError(
                    f"another process is writing to bank {self.uri!r}; "
                    "wait for it to finish and run this again"
                ) from None
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _check_writable(self) -> None:
        if self._at is not None:
            raise BankError(
                f"the bank is open read-only at version {self.at} (--at); drop --at to write, "
                f"or `protodb restore {self.at}` to make that version the latest"
            )

    # ------------------------------------------------------------------ tables

    def _init(self) -> None:
        from protodb import __version__

        for name in CORE_TABLES:
            if name != "meta" and not self._exists(name):
                self.db.create_table(name, schema=table_schema(name))
        # meta last, created with its rows in one commit: a bank whose creation was killed
        # has no meta and is completed by the next open
        self.db.create_table(
            "meta",
            pa.table(
                {
                    "key": ["schema_version", "created_at", "created_by", "protodb_version"],
                    "value": [str(SCHEMA_VERSION), now().isoformat(), _user(), __version__],
                },
                schema=table_schema("meta"),
            ),
        )

    def meta(self) -> dict[str, str]:
        meta = self.read("meta")
        return dict(zip(meta["key"].to_pylist(), meta["value"].to_pylist(), strict=True))

    def _check_schema(self) -> None:
        found = int(self.meta().get("schema_version", "0"))
        if found > SCHEMA_VERSION:
            raise BankError(
                f"bank {self.uri!r} has schema version {found}, newer than this protodb "
                f"understands ({SCHEMA_VERSION}); upgrade protodb (pip install -U protodb)"
            )
        if found == 1:
            if not self._migrate:
                raise NeedsMigrationError(
                    f"bank {self.uri!r} has schema version 1; open it once with this protodb "
                    f"to migrate it (`protodb --bank {self.uri} ls`)"
                )
            with self.commit_lock():
                if int(self.meta().get("schema_version", "0")) == 1:
                    self._migrate_1_to_2()
        elif found < SCHEMA_VERSION:
            raise BankError(
                f"bank {self.uri!r} has schema version {found}; this protodb needs "
                f"{SCHEMA_VERSION} and has no migration from it: re-create the bank"
            )

    def _migrate_1_to_2(self) -> None:
        """Schema 1 -> 2: write ids and row ranges. A legacy set's rows get a write id made
        from its key (``legacy:class:generator:seed:extractor``), so they read, export and
        merge like any set's; row ranges are unknown (-1) until ``gc`` records them."""
        legacy_id = (
            "concat('legacy:', class_key, ':', generator_id, ':', CAST(seed AS STRING), ':', "
            "extractor_id)"
        )
        for name in self.table_names():
            tbl = self.table(name)
            have = set(tbl.schema.names)
            new: dict[str, str] = {}
            if name.startswith("prototypes") or name in ("cells", "sets"):
                new["write_id"] = legacy_id
            if name == "sets":
                new["row_start"] = "CAST(-1 AS BIGINT)"
                new["row_count"] = "CAST(-1 AS INT)"
            new = {k: v for k, v in new.items() if k not in have}
            if new:
                retry_commit(lambda t=tbl, n=new: t.add_columns(n))
            if name == "sets" and "row_meta" not in have:
                field = pa.field("row_meta", pa.binary())
                retry_commit(lambda t=tbl, f=field: t.add_columns(f))
        self.table("meta").update(
            where="key = 'schema_version'", values={"value": str(SCHEMA_VERSION)}
        )
        self.log("migrate", {"from": 1, "to": SCHEMA_VERSION})

    def _open_at(self, version: int) -> None:
        entries = self.history()
        if not 1 <= version <= len(entries):
            raise NotFoundError(
                f"bank version {version} does not exist (versions 1 to {len(entries)}); "
                "see `protodb history`"
            )
        self._at = dict(entries[version - 1].versions)
        self.at = version

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

    def dataset(self, name: str, version: int | None = None):
        """The Lance dataset of a table at ``version`` (latest if None); fixed versions are
        cached, since a Lance version never changes."""
        if version is None:
            return self.table(name).to_lance()
        key = (name, int(version))
        ds = self._datasets.get(key)
        if ds is None:
            try:
                ds = self.table(name, latest=False).to_lance().checkout_version(int(version))
            except Exception as err:  # noqa: BLE001 - Lance raises ValueError/OSError here
                raise NotFoundError(
                    f"version {version} of table {name!r} is not in bank {self.uri!r} "
                    f"(removed by gc, or never written): {err}"
                ) from None
            self._datasets[key] = ds
        return ds

    def ensure_prototype_table(self, extractor_id: str, dim: int, dtype: str) -> str:
        name = prototype_table_name(extractor_id)
        if not self._exists(name):
            with self.commit_lock():
                if not self._exists(name):
                    self.create_prototype_table(name, dim, dtype)
        return name

    def create_prototype_table(self, name: str, dim: int, dtype: str) -> None:
        """A new, empty prototype table. Lance file format 2.0: measured here, its ``take`` of
        fixed-size vectors is 2-3x faster than 2.2's, and vocabulary loads are takes."""
        import warnings

        with warnings.catch_warnings():  # lancedb prefers database-wide options; one table here
            warnings.simplefilter("ignore", DeprecationWarning)
            self.db.create_table(
                name,
                schema=table_schema(name, dim, dtype),
                data_storage_version=PROTOTYPE_STORAGE_VERSION,
            )

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

    def read(
        self,
        name: str,
        where: str | None = None,
        version: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows of a table at its latest or a given version, optionally filtered.

        With the bank opened ``at`` a version, reads without ``version`` see that bank version
        (a table made later reads as empty)."""
        if version is None and self._at is not None and name not in ("log", "meta"):
            version = self._at.get(name)
            if version is None:
                schema = self.table(name, latest=False).schema
                empty = schema.empty_table()
                return empty.select(list(columns)) if columns else empty
        cols = list(columns) if columns else None
        if version is not None:
            return self.dataset(name, version).to_table(filter=where, columns=cols)
        return self.table(name).to_lance().to_table(filter=where, columns=cols)

    def versions(self) -> dict[str, int]:
        """The latest version of every table."""
        return {name: int(self.table(name).version) for name in self.table_names()}

    # ------------------------------------------------------------------ writes

    def append(self, name: str, rows: pa.Table) -> None:
        """Append rows as they are (no key check; see :meth:`insert_new`)."""
        self._check_writable()
        if rows.num_rows:
            tbl = self.table(name)
            schema = tbl.schema
            if rows.schema.names != schema.names and set(rows.schema.names) == set(schema.names):
                rows = rows.select(schema.names)
            rows = rows.cast(schema)
            retry_commit(lambda: tbl.add(rows))

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
        Returns False (writing nothing) when the set already exists."""
        self._check_writable()
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

    def log(self, op: str, detail: dict) -> LogEntry:
        """Append a log row (a new bank version) recording the table versions now."""
        self._check_writable()
        with self.commit_lock():
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

    def tag(self, table: str, tag: str, version: int) -> None:
        """Create (or move) a Lance tag on a table version; tagged versions survive gc."""
        tags = self.table(table).tags
        if tag in tags.list():
            retry_commit(lambda: tags.update(tag, version))
        else:
            retry_commit(lambda: tags.create(tag, version))

    def untag(self, table: str, tag: str) -> None:
        """Delete a Lance tag (its version becomes collectable by gc)."""
        tags = self.table(table).tags
        if tag in tags.list():
            retry_commit(lambda: tags.delete(tag))

    def tags(self, table: str) -> dict[str, int]:
        """Tag name -> version of one table."""
        return {k: int(v["version"]) for k, v in self.table(table).tags.list().items()}

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

    def _set_index(self, extractor_id: str, sets_version: int) -> tuple[pa.Table, pa.Array]:
        """One extractor's completion records at a ``sets`` version: (write_id, row_start,
        row_count, _rowaddr) and, row for row, their keys joined as "class\\0generator\\0seed"
        (for :func:`pyarrow.compute.index_in`); cached for the last few versions."""
        cache_key = (sets_version, extractor_id)
        hit = self._ranges.get(cache_key)
        if hit is not None:
            return hit
        cols = ["class_key", "generator_id", "seed", "write_id", "row_start", "row_count"]
        t = self.dataset("sets", sets_version).to_table(
            columns=cols, filter=f"extractor_id = {sql_str(extractor_id)}", with_row_address=True
        )
        seeds = pc.cast(t.column("seed"), pa.string())
        keys = pc.binary_join_element_wise(
            t.column("class_key"), t.column("generator_id"), seeds, "\0"
        )
        hit = (t.select(["write_id", "row_start", "row_count", "_rowaddr"]), keys.combine_chunks())
        _bounded_put(self._ranges, cache_key, hit)
        return hit

    def _set_metas(self, sets_version: int, records: pa.Table) -> list[bytes | None]:
        """The ``row_meta`` of the given completion records (rows of :meth:`_set_index`), read
        by row address for those not yet cached."""
        cache = self._row_meta.get(sets_version)
        if cache is None:
            cache = {}
            _bounded_put(self._row_meta, sets_version, cache)
        ids = records.column("write_id").to_pylist()
        missing = [i for i, w in enumerate(ids) if w not in cache]
        if missing:
            ds = self.dataset("sets", sets_version)
            cols = ["write_id", "row_meta"]
            if hasattr(ds, "_take_rows"):
                addresses = records.column("_rowaddr").take(missing).combine_chunks()
                got = ds._take_rows(addresses, columns=cols)
            else:
                wanted = ", ".join(sql_str(ids[i]) for i in missing)
                got = ds.to_table(columns=cols, filter=f"write_id IN ({wanted})")
            cache.update(zip(got.column(0).to_pylist(), got.column(1).to_pylist(), strict=True))
        return [cache.get(w) for w in ids]

    def load_prototypes(
        self,
        table: str,
        extractor_id: str,
        sets: Sequence[tuple[str, str, int]],
        version: int | None = None,
        *,
        sets_version: int | None = None,
    ) -> tuple[np.ndarray, pa.Table]:
        """The prototype rows of completed sets, set by set in the order given.

        sets: (class_key, generator_id, seed) tuples; version / sets_version: the versions of
        the prototype table and of ``sets`` to read (a vocabulary's pins; latest if None).
        Returns (vectors [P, D] in the stored dtype, float16 or float32; the other columns of
        the P rows as an Arrow table). Reads each set's recorded row range (checked against
        the set's write id) straight from the data files, or with one Lance ``take`` where that
        is not possible; falls back to a filtered read of the rows whose write ids the
        completion records name when a range is missing or stale.
        """
        if version is None and self._at is not None:
            version = self._at.get(table)
            sets_version = self._at.get("sets") if sets_version is None else sets_version
        # resolve "latest" once, so every read below sees the same versions
        version = int(self.table(table).version) if version is None else int(version)
        sets_version = (
            int(self.table("sets").version) if sets_version is None else int(sets_version)
        )
        records, keys = self._set_index(extractor_id, sets_version)
        want = pa.array([f"{k}\0{g}\0{int(s)}" for k, g, s in sets], pa.string())
        pos = pc.index_in(want, value_set=keys)
        if pos.null_count:
            k, g, s = sets[pos.is_null().to_pylist().index(True)]
            raise NotFoundError(
                f"no completed {extractor_id} prototype set for class {k!r} "
                f"(generator {g}, seed {s}); add it with protodb add"
            )
        chosen = records.take(pos)
        picked = list(
            zip(
                chosen.column("write_id").to_pylist(),
                chosen.column("row_start").to_pylist(),
                chosen.column("row_count").to_pylist(),
                strict=True,
            )
        )
        ds = self.dataset(table, version)
        names = [f for f in ds.schema.names if f != "write_id"]
        if picked and all(r0 >= 0 for _, r0, _ in picked):
            # ranges of fixed versions, once checked, stay right: a Lance version never changes
            metas = self._set_metas(sets_version, chosen)
            pin = (table, version, sets_version)
            fast = self._take_ranges(ds, names, extractor_id, sets, picked, pin, metas)
            if fast is not None:
                return fast
        ids = ", ".join(sql_str(w) for w, _, _ in picked) or "''"
        where = f"extractor_id = {sql_str(extractor_id)} AND write_id IN ({ids})"
        got = ds.to_table(filter=where, columns=[*names, "write_id"])
        order = {w: i for i, (w, _, _) in enumerate(picked)}
        rank = np.array([order[w] for w in got.column("write_id").to_pylist()], dtype=np.int64)
        got = got.take(pa.array(np.argsort(rank, kind="stable")))
        if picked and any(w == "" for w, _, _ in picked):  # rows migrated with empty ids: by key
            got = rows_of_sets(got, {(k, g, int(s)) for k, g, s in sets})
        return _split_vectors(got.select(names))

    def _take_ranges(
        self, ds, names: list[str], extractor_id: str, sets, picked, pin, metas
    ) -> tuple[np.ndarray, pa.Table] | None:
        """The fast path of :meth:`load_prototypes`: each set's recorded row range, checked by
        the write id of its first and last row (a write id's rows are one contiguous block of
        exactly the recorded count), read straight from the data files
        (:class:`~protodb.lance_direct.VectorReader`, its bytes checked against Lance's own
        read of those edge rows) or else with one Lance ``take``; the per-row metadata comes
        from the sets' ``row_meta`` and the per-set columns from their keys. None when a range
        is stale."""
        starts = np.array([r0 for _, r0, _ in picked], dtype=np.int64)
        counts = np.array([n for _, _, n in picked], dtype=np.int64)
        ids = [w for w, _, _ in picked]
        per_row = [c for c in names if c not in SET_COLUMNS]
        unpacked = {}
        if all(
            m is not None and len(m) == ROW_META.itemsize * n
            for m, (_, _, n) in zip(metas, picked, strict=True)
        ):
            unpacked = unpack_row_meta(b"".join(metas), ds.schema)
            per_row = [c for c in per_row if c not in unpacked]
        vectors = None
        if "vector" in per_row and self._vector_reader is not None:
            vectors = self._vector_reader.read(ds, "vector", starts, counts)
        full = (counts > 0) & np.array([(pin, w) not in self._checked for w in ids], dtype=bool)
        if full.any():
            first = starts[full]
            ends = np.stack([first, first + counts[full] - 1], axis=1).ravel()
            edge_cols = ["write_id", "vector"] if vectors is not None else ["write_id"]
            try:
                edge = ds.take(pa.array(ends), columns=edge_cols)
            except Exception:  # noqa: BLE001 - a range past the end (stale): use the filter
                return None
            if edge["write_id"].to_pylist() != [
                w for w, f in zip(ids, full, strict=True) if f for _ in range(2)
            ]:
                return None
            if vectors is not None:
                at = np.concatenate([[0], np.cumsum(counts)[:-1]])[full]
                mine = vectors[np.stack([at, at + counts[full] - 1], axis=1).ravel()]
                theirs = _split_vectors(edge.select(["vector"]))[0]
                if mine.tobytes() != theirs.tobytes():  # a layout the reader misread: stop
                    self._vector_reader = None
                    vectors = None
            self._checked.update((pin, w) for w in ids)
        if vectors is not None:
            per_row.remove("vector")
        got = None
        if per_row:
            total = int(counts.sum())
            offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
            got = _take_offsets(ds, offsets + np.arange(total, dtype=np.int64), per_row)
        which = pa.array(np.repeat(np.arange(len(picked), dtype=np.int32), counts))
        per_set = {
            "class_key": [k for k, _, _ in sets],
            "generator_id": [g for _, g, _ in sets],
            "seed": [int(x) for _, _, x in sets],
            "extractor_id": [extractor_id] * len(sets),
        }
        columns = {}
        for c in names:
            if c == "vector" and vectors is not None:
                continue
            if c in unpacked:
                columns[c] = unpacked[c]
            elif c in per_row:
                columns[c] = got.column(c)
            else:
                kind = ds.schema.field(c).type
                values = pa.array(per_set[c], kind)
                columns[c] = pa.DictionaryArray.from_arrays(which, values).cast(kind)
        table = pa.table(columns)
        return (vectors, table) if vectors is not None else _split_vectors(table)


def _bounded_put(cache: dict, key, value, keep: int = 4) -> None:
    """Put ``key`` in an insertion-ordered cache of at most ``keep`` entries (oldest out)."""
    cache[key] = value
    while len(cache) > keep:
        cache.pop(next(iter(cache)))


def _fragment_layout(ds) -> tuple[np.ndarray, np.ndarray] | None:
    """(first offset, fragment id) per fragment of the dataset's version (read from its
    manifest, well under a millisecond), or None when a fragment has deleted rows (offsets
    then skip rows, so they do not map to row addresses)."""
    frags = ds.get_fragments()
    counts = [f.count_rows() for f in frags]
    if any(c != f.physical_rows for c, f in zip(counts, frags, strict=True)):
        return None
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return starts, np.array([f.fragment_id for f in frags], dtype=np.uint64)


def _take_offsets(ds, idx: np.ndarray, columns: list[str]) -> pa.Table:
    """Rows at dataset offsets ``idx`` (int64 [N], in bounds). Through row addresses
    (fragment id << 32 | offset in fragment), which Lance reads about 25% faster than offsets
    (bench_vocab_load), when every fragment is free of deletions; else by offset."""
    layout = _fragment_layout(ds)
    take_rows = getattr(ds, "_take_rows", None)
    if layout is None or take_rows is None or not len(idx):
        return ds.take(pa.array(idx), columns=columns)
    starts, ids = layout
    frag = np.searchsorted(starts, idx, side="right") - 1
    addresses = (ids[frag] << np.uint64(32)) | (idx - starts[frag]).astype(np.uint64)
    return take_rows(pa.array(addresses, pa.uint64()), columns=columns)


def pack_row_meta(rows: pa.Table) -> bytes | None:
    """A set's per-row polarity, level, part, support and weight as ``ROW_META`` records (in
    row order), or None when a value has no code (then fast loads read the columns)."""
    pol, lev = rows.column("polarity").to_pylist(), rows.column("level").to_pylist()
    if not set(pol) <= set(POLARITIES) or not set(lev) <= set(LEVELS):
        return None
    out = np.zeros(rows.num_rows, ROW_META)
    out["polarity"] = [POLARITIES.index(p) for p in pol]
    out["level"] = [LEVELS.index(x) for x in lev]
    for c in ("part", "support", "weight"):
        out[c] = rows.column(c).to_numpy()
    return out.tobytes()


def unpack_row_meta(data: bytes, schema: pa.Schema) -> dict[str, pa.Array]:
    """``ROW_META`` records -> Arrow columns of the prototype table's types."""
    rec = np.frombuffer(data, ROW_META)
    out = {}
    for c, names in (("polarity", POLARITIES), ("level", LEVELS)):
        codes = pa.array(rec[c].astype(np.int8))
        out[c] = pa.DictionaryArray.from_arrays(codes, pa.array(names)).cast(pa.string())
    for c in ("part", "support", "weight"):
        out[c] = pa.array(np.ascontiguousarray(rec[c])).cast(schema.field(c).type)
    return out


def _split_vectors(table: pa.Table) -> tuple[np.ndarray, pa.Table]:
    dim = table.schema.field("vector").type.list_size
    col = table.column("vector")
    col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    values = col.flatten().to_numpy(zero_copy_only=False) if len(col) else np.zeros(0)
    dtype = np.float16 if col.type.value_type == pa.float16() else np.float32
    return values.astype(dtype, copy=False).reshape(-1, dim), table.drop_columns(["vector"])


def rows_of_sets(rows: pa.Table, keys: set[tuple[str, str, int]]) -> pa.Table:
    """The rows whose (class_key, generator_id, seed) is in ``keys``, in their order."""
    mask = [
        (k, g, int(s)) in keys
        for k, g, s in zip(
            rows.column("class_key").to_pylist(),
            rows.column("generator_id").to_pylist(),
            rows.column("seed").to_pylist(),
            strict=True,
        )
    ]
    return rows.filter(pa.array(mask, pa.bool_()))


def dedupe(rows: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Rows with the first occurrence of each ``keys`` tuple, in their original order."""
    if rows.num_rows < 2:
        return rows
    seen: set = set()
    keep = []
    for k in zip(*(rows.column(c).to_pylist() for c in keys), strict=True):
        keep.append(k not in seen)
        seen.add(k)
    return rows if all(keep) else rows.filter(pa.array(keep))


def open_bank(
    uri: str, *, create: bool = True, at: int | None = None, migrate: bool = True
) -> Bank:
    """Open (and by default create) the bank at ``uri``; ``at``: read-only at a bank version;
    ``migrate=False`` refuses (:class:`NeedsMigrationError`) a bank of an older schema rather
    than migrating it in place."""
    return Bank(uri, create=create, at=at, migrate=migrate)


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
