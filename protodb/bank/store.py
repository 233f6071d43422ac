"""The bank's connection and tables: :class:`Bank` and :func:`open_bank`.

:class:`Bank` opens (and creates, or migrates) a LanceDB database and gives table handles and
reads at the latest or a pinned version. Its other responsibilities live beside it and are mixed
in: locks and commits (:mod:`~protodb.bank.commit`), keyed writes (:mod:`~protodb.bank.writes`),
reads and fast loads (:mod:`~protodb.bank.reads`), history and tags
(:mod:`~protodb.bank.history`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from protodb.bank.commit import Locks, commit_point, current_user, retry_commit
from protodb.bank.history import History
from protodb.bank.journal import Journaled
from protodb.bank.lance_direct import VectorReader
from protodb.bank.reads import Reads
from protodb.bank.schema import (
    CORE_TABLES,
    PROTOTYPE_STORAGE_VERSION,
    SCHEMA_VERSION,
    now,
    prototype_table_name,
    read_sets,
    sql_str,
    table_schema,
)
from protodb.bank.writes import KeyedWrites
from protodb.errors import BankError, NeedsMigrationError, NotFoundError

log = logging.getLogger("protodb.bank")


def local_path(uri: str) -> str | None:
    """The directory of a local bank URI (a path or file://...), None for an object store."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return None if "://" in uri else uri


def missing_bank(uri: str) -> NotFoundError:
    """The error for a read of a bank that is not there."""
    return NotFoundError(
        f"no protodb bank at {uri!r}; create one with `protodb --bank {uri} add CLASS`"
    )


class Bank(Locks, Journaled, KeyedWrites, Reads, History):
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
            raise missing_bank(uri)
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
            raise missing_bank(uri)
        if not exists:
            with self.commit_lock():
                if not self._exists("meta"):
                    self._init()
        self._check_schema()
        if at is not None:
            self._open_at(at)
        elif self.meta().get("journal") is not None:
            self.recover()
            self._at = self.pending_versions()  # an unfinished operation stays invisible

    # ------------------------------------------------------------------ tables

    def _init(self) -> None:
        from protodb.version import __version__

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
                    "value": [str(SCHEMA_VERSION), now().isoformat(), current_user(), __version__],
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
        if found in (1, 2):
            if not self._migrate:
                raise NeedsMigrationError(
                    f"bank {self.uri!r} has schema version {found}; open it once with this "
                    f"protodb to migrate it (`protodb --bank {self.uri} ls`)"
                )
            self._migrate_from(found)
        elif found < SCHEMA_VERSION:
            raise BankError(
                f"bank {self.uri!r} has schema version {found}; this protodb needs "
                f"{SCHEMA_VERSION} and has no migration from it: re-create the bank"
            )

    def _migrate_from(self, found: int) -> None:
        """Migrate an older bank in place, under the commit lock, after finishing (or rolling
        back) an operation a killed process left; one line is logged (``protodb.bank``). A
        local bank this process cannot write is read as it is (reads fill in recipe ids,
        :func:`~protodb.bank.schema.read_sets`; writes are refused as on any read-only bank)."""
        if self._dir is not None:
            from protodb.bank.commit import COMMIT_LOCK

            try:
                os.close(self._lock_file(COMMIT_LOCK))
            except BankError:
                return
        with self.commit_lock():
            if self.meta().get("journal") is not None:
                self.recover()
                if self.meta().get("journal") is not None:
                    raise BankError(
                        f"bank {self.uri!r} needs a schema migration but an operation on it is "
                        "running or was interrupted; wait for it and run this again"
                    )
            was = found = int(self.meta().get("schema_version", "0"))
            if found == 1:
                self._migrate_1_to_2()
                found = 2
            if found == 2:
                self._migrate_2_to_3()
                log.warning(
                    "protodb: migrated bank %s from schema %s to %s (prototype sets are now "
                    "keyed by recipe id too)",
                    self.uri,
                    was,
                    SCHEMA_VERSION,
                )

    def _migrate_2_to_3(self) -> None:
        """Schema 2 -> 3: recipe ids. Every set gets the recipe id and config of the recipe it
        was built with (its stored mask source and n, K = 32, every level), in one commit of
        ``sets``; vocabularies are left as they are (a class entry without a recipe id names
        the one set of its key at the vocabulary's pinned versions)."""
        self._add_recipe_columns()
        self.table("meta").update(where="key = 'schema_version'", values={"value": "3"})
        commit_point()
        self.log("migrate", {"from": 2, "to": 3})

    def _add_recipe_columns(self) -> None:
        """Give ``sets`` its ``recipe_id`` / ``recipe`` columns where it has none (a schema-2
        table, or one ``restore`` took back to a version from before the migration) and fill
        every empty one with its set's legacy recipe (:func:`~protodb.bank.schema.read_sets`):
        one commit per (mask source, n) pair; run again, it finishes what a killed run left."""
        from protodb.synthesis.recipe import legacy_recipe

        tbl = self.table("sets")
        if "recipe_id" not in tbl.schema.names:
            fields = [pa.field("recipe_id", pa.string()), pa.field("recipe", pa.string())]
            retry_commit(lambda: tbl.add_columns(pa.schema(fields)))
        empty = self.read("sets", "recipe_id IS NULL", columns=["mask_source", "n"]).to_pylist()
        for m, n in sorted({(p["mask_source"], int(p["n"])) for p in empty}):
            r = legacy_recipe(m, n)
            where = f"recipe_id IS NULL AND mask_source = {sql_str(m)} AND n = {n}"
            values = {"recipe_id": r.id, "recipe": r.to_json()}
            retry_commit(lambda w=where, v=values: tbl.update(where=w, values=v))

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
        self.table("meta").update(where="key = 'schema_version'", values={"value": "2"})
        self.log("migrate", {"from": 1, "to": 2})

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
        commit_point()

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
        ds = self.dataset(name, version) if version is not None else self.table(name).to_lance()
        if name == "sets":  # recipe ids also at versions from before schema 3
            return read_sets(ds, where, cols)
        return ds.to_table(filter=where, columns=cols)

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
            if self._dir is None:  # on S3 every commit is made under the commit lock
                with self.commit_lock():
                    retry_commit(lambda: tbl.add(rows))
            else:
                retry_commit(lambda: tbl.add(rows))


def open_bank(
    uri: str, *, create: bool = True, at: int | None = None, migrate: bool = True
) -> Bank:
    """Open (and by default create) the bank at ``uri``; ``at``: read-only at a bank version;
    ``migrate=False`` refuses (:class:`NeedsMigrationError`) a bank of an older schema rather
    than migrating it in place."""
    return Bank(uri, create=create, at=at, migrate=migrate)
