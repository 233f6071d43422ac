"""The bank's connection and tables: :class:`Bank` and :func:`open_bank`.

:class:`Bank` opens (and creates, or migrates) a LanceDB database and gives table handles and
reads at the latest or a pinned version. It is made of parts it owns, each in its module: its
tables (:mod:`~protodb.bank.tables`), locks (:mod:`~protodb.bank.commit`), journal
(:mod:`~protodb.bank.journal`), history and tags (:mod:`~protodb.bank.history`) and prototype
loads (:mod:`~protodb.bank.loads`); its row lookups (:mod:`~protodb.bank.reads`) are shared with
the read-only view, its keyed writes are :mod:`~protodb.bank.writes`, its migrations
:mod:`~protodb.bank.migrations`. The methods below are the bank's one face to its callers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from protodb.bank import writes
from protodb.bank.commit import Locks, current_user, retry_commit
from protodb.bank.history import History, versions_at
from protodb.bank.journal import Journal
from protodb.bank.loads import PrototypeLoader
from protodb.bank.migrations import check_schema
from protodb.bank.reads import RowReads
from protodb.bank.rows import meta_table
from protodb.bank.schema import (
    CORE_TABLES,
    SCHEMA_VERSION,
    LogEntry,
    SetKey,
    now,
    prototype_table_name,
)
from protodb.bank.tables import Tables
from protodb.errors import BankError, NotFoundError


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


class Bank(RowReads):
    """A protodb bank at a LanceDB URI (a local directory or s3://, gs://, az://).

    Open with :func:`open_bank`. ``create=False`` refuses to create a missing bank. ``at`` opens
    the bank read-only as it was at that bank version (``protodb --at VERSION``). Object-store
    credentials come from the environment (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``), as LanceDB
    reads them.

    Parts: ``tables`` (:class:`~protodb.bank.tables.Tables`), ``locks``
    (:class:`~protodb.bank.commit.Locks`), ``journal`` (:class:`~protodb.bank.journal.Journal`),
    ``history_log`` (:class:`~protodb.bank.history.History`), ``loads``
    (:class:`~protodb.bank.loads.PrototypeLoader`).
    """

    def __init__(
        self, uri: str, *, create: bool = True, at: int | None = None, migrate: bool = True
    ) -> None:
        import lancedb

        self.uri = uri
        directory = local_path(uri)
        if not create and directory is not None and not os.path.isdir(directory):
            raise missing_bank(uri)
        try:
            if directory is not None and create:
                os.makedirs(directory, exist_ok=True)
            self.db = lancedb.connect(uri)
        except Exception as err:  # noqa: BLE001 - any failure here is a bad location
            raise BankError(
                f"cannot open bank {uri!r}: {err}; check --bank / PROTODB_BANK"
            ) from None
        self.tables = Tables(self.db, uri)
        self.locks = Locks(uri, directory)
        self.journal = Journal(self)
        self.history_log = History(self)
        self.loads = PrototypeLoader(self)
        self._at: dict[str, int] | None = None
        self.at: int | None = None
        exists = self.tables.exists("meta")
        if not exists and not create:
            raise missing_bank(uri)
        if not exists:
            with self.commit_lock():
                if not self.tables.exists("meta"):
                    self._init()
        check_schema(self, migrate=migrate)
        if at is not None:
            self._at = versions_at(self.history(), at)
            self.at = at
        elif self.meta().get("journal") is not None:
            self.recover()
            self._at = self.journal.pending_versions()  # an unfinished operation stays invisible

    def _init(self) -> None:
        from protodb.version import __version__

        for name in CORE_TABLES:
            if name != "meta" and not self.tables.exists(name):
                self.tables.create(name)
        # meta last, created with its rows in one commit: a bank whose creation was killed
        # has no meta and is completed by the next open
        values = {
            "schema_version": str(SCHEMA_VERSION),
            "created_at": now().isoformat(),
            "created_by": current_user(),
            "protodb_version": __version__,
        }
        self.tables.create("meta", meta_table(values))

    # ------------------------------------------------------------------ tables

    def table(self, name: str, *, latest: bool = True):
        """An open handle on table ``name``, checked out at its latest version."""
        return self.tables.table(name, latest=latest)

    def dataset(self, name: str, version: int | None = None):
        """The Lance dataset of a table at ``version`` (latest if None); fixed versions are
        cached, since a Lance version never changes."""
        return self.tables.dataset(name, version)

    def schema_of(self, name: str) -> pa.Schema:
        return self.table(name, latest=False).schema

    def table_names(self) -> list[str]:
        return self.tables.names()

    def versions(self) -> dict[str, int]:
        """The latest version of every table."""
        return {name: int(self.table(name).version) for name in self.table_names()}

    def ensure_prototype_table(self, extractor_id: str, dim: int, dtype: str) -> str:
        name = prototype_table_name(extractor_id)
        if not self.tables.exists(name):
            with self.commit_lock():
                if not self.tables.exists(name):
                    self.create_prototype_table(name, dim, dtype)
        return name

    def create_prototype_table(self, name: str, dim: int, dtype: str) -> None:
        """A new, empty prototype table (:meth:`~protodb.bank.tables.Tables.create_prototypes`)."""
        self.tables.create_prototypes(name, dim, dtype)

    # ------------------------------------------------------------------ locks and the journal

    def has_lock(self) -> bool:
        """Whether this bank has a commit lock (:meth:`~protodb.bank.commit.Locks.has_lock`)."""
        return self.locks.has_lock()

    def commit_lock(self, *, wait: bool = True) -> contextlib.AbstractContextManager[None]:
        """Exclusive, re-entrant lock for a check-then-commit section
        (:meth:`~protodb.bank.commit.Locks.commit_lock`)."""
        return self.locks.commit_lock(wait=wait)

    @contextlib.contextmanager
    def writer(self, *, exclusive: bool = False, wait: bool = True) -> Iterator[None]:
        """Mark this process as an active writer for the block
        (:meth:`~protodb.bank.commit.Locks.writer`); refused on a bank that cannot be written."""
        self.check_writable()
        with self.locks.writer(exclusive=exclusive, wait=wait):
            yield

    def atomic(self, op: str) -> contextlib.AbstractContextManager[None]:
        """Run a multi-table write as one step (:meth:`~protodb.bank.journal.Journal.atomic`)."""
        return self.journal.atomic(op)

    def recover(self) -> str | None:
        """Finish an operation a killed process left
        (:meth:`~protodb.bank.journal.Journal.recover`)."""
        return self.journal.recover()

    @property
    def recovered(self) -> str | None:
        """What opening this bank recovered ("completed OP" / "rolled back ... OP"), or None."""
        return self.journal.recovered

    def check_writable(self) -> None:
        """Before a write: settle an unfinished operation (:meth:`Journal.settle`); refuse a
        bank opened at a version."""
        if self.journal.settle():
            self._at = None
        if self._at is not None:
            raise BankError(
                f"the bank is open read-only at version {self.at} (--at); drop --at to write, "
                f"or `protodb restore {self.at}` to make that version the latest"
            )

    # ------------------------------------------------------------------ writes

    def append(self, name: str, rows: pa.Table) -> None:
        """Append rows as they are (no key check; see :meth:`insert_new`)."""
        self.check_writable()
        if rows.num_rows:
            tbl = self.table(name)
            schema = tbl.schema
            if rows.schema.names != schema.names and set(rows.schema.names) == set(schema.names):
                rows = rows.select(schema.names)
            rows = rows.cast(schema)
            if self.locks.dir is None:  # on S3 every commit is made under the commit lock
                with self.commit_lock():
                    retry_commit(lambda: tbl.add(rows))
            else:
                retry_commit(lambda: tbl.add(rows))

    def insert_new(self, name: str, rows: pa.Table, keys: Sequence[str]) -> int:
        """Keyed insert (:func:`~protodb.bank.writes.insert_new`)."""
        return writes.insert_new(self, name, rows, keys)

    def upsert_class(self, class_key: str, name: str, kind: str = "unknown", source: str = "none"):
        """Insert a class or bring its kind (:func:`~protodb.bank.writes.upsert_class`)."""
        writes.upsert_class(self, class_key, name, kind, source)

    def write_set(
        self, key: SetKey, prototypes: pa.Table, cells: pa.Table, record: dict[str, Any]
    ) -> bool:
        """Commit one prototype set (:func:`~protodb.bank.writes.write_set`)."""
        return writes.write_set(self, key, prototypes, cells, record)

    # ------------------------------------------------------------------ history and tags

    def log(self, op: str, detail: dict) -> LogEntry:
        """Append a log row, a new bank version (:meth:`~protodb.bank.history.History.log`)."""
        return self.history_log.log(op, detail)

    def tag(self, table: str, tag: str, version: int) -> None:
        """Create (or move) a Lance tag on a table version; tagged versions survive gc."""
        self.history_log.tag(table, tag, version)

    def untag(self, table: str, tag: str) -> None:
        """Delete a Lance tag (its version becomes collectable by gc)."""
        self.history_log.untag(table, tag)

    def tags(self, table: str) -> dict[str, int]:
        """Tag name -> version of one table."""
        return self.history_log.tags(table)

    # ------------------------------------------------------------------ prototype loads

    @property
    def load_prototypes(self):
        """The prototype rows of completed sets, set by set in the order given: the loads'
        :meth:`~protodb.bank.loads.PrototypeLoader.load_prototypes`, called as
        ``bank.load_prototypes(table, extractor_id, sets, version, sets_version=...)``."""
        return self.loads.load_prototypes

    @property
    def _vector_reader(self):
        """The loads' direct vector reader (None once it misread a layout)."""
        return self.loads.vector_reader

    @_vector_reader.setter
    def _vector_reader(self, reader) -> None:
        self.loads.vector_reader = reader


def open_bank(
    uri: str, *, create: bool = True, at: int | None = None, migrate: bool = True
) -> Bank:
    """Open (and by default create) the bank at ``uri``; ``at``: read-only at a bank version;
    ``migrate=False`` refuses (:class:`NeedsMigrationError`) a bank of an older schema rather
    than migrating it in place."""
    return Bank(uri, create=create, at=at, migrate=migrate)
