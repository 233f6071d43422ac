"""A quick read-only view of a local bank through pylance alone, for the read-only commands.

Opening a :class:`~protodb.bank.store.Bank` imports lancedb, which took about 2.3 s of the
2.5-2.9 s a ``protodb ls`` took on the development machine; pylance (``import lance``), which
opens each table's Lance dataset (``<bank>/<table>.lance``, where LanceDB keeps it) directly,
imports in about 0.35 s. :func:`open_reader` gives a :class:`BankReader` with the read side of a
Bank (``read``, ``meta``, ``history``, ``classes``, ``sets``, ``--at``) in the common case only:
a local bank directory at the current schema version. Anything else gives None and the caller
opens the full Bank, which handles every case: object stores, a bank to migrate (schema 1) or
refuse (another schema), a missing table.

Every read without a version opens the table's latest version afresh, so commits of other
processes are seen, as the Bank's reads see them.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

from protodb.bank.history import versions_at
from protodb.bank.reads import RowReads
from protodb.bank.schema import SCHEMA_VERSION
from protodb.bank.store import local_path, missing_bank
from protodb.errors import ProtodbError


class BankReader(RowReads):
    """Reads of a local bank directory through Lance datasets (no lancedb); open it with
    :func:`open_reader`. Its reads are the Bank's (:class:`~protodb.bank.reads.RowReads`), over
    the datasets it opens itself (``at``: the bank as it was at that version)."""

    def __init__(self, uri: str, directory: str) -> None:
        self.uri = uri
        self._dir = directory
        self._datasets: dict[tuple[str, int], Any] = {}
        self._at: dict[str, int] | None = None
        self.at: int | None = None

    def path(self, name: str) -> str:
        """The Lance dataset of table ``name`` (LanceDB's location for it)."""
        return os.path.join(self._dir, f"{name}.lance")

    def dataset(self, name: str, version: int | None = None):
        """The Lance dataset of a table at ``version`` (latest, opened afresh, if None); fixed
        versions are cached."""
        import lance

        if version is None:
            return lance.dataset(self.path(name))
        key = (name, int(version))
        ds = self._datasets.get(key)
        if ds is None:
            ds = self._datasets[key] = lance.dataset(self.path(name), version=int(version))
        return ds

    def schema_of(self, name: str) -> pa.Schema:
        return self.dataset(name).schema


def open_reader(uri: str, *, at: int | None = None) -> BankReader | None:
    """A :class:`BankReader` on the bank at ``uri`` (``at``: as it was at that bank version),
    or None where the full Bank must open it: an object store, a schema version other than
    this protodb's, a journalled operation to recover or hide (:mod:`~protodb.bank.journal`),
    or anything Lance fails to read.

    Raises what opening the Bank with ``create=False`` raises for the same cause (its
    :class:`~protodb.errors.NotFoundError`) when there is no bank at ``uri`` or no version
    ``at``."""
    directory = local_path(uri)
    if directory is None:
        return None
    if not os.path.isdir(directory) or not os.path.isdir(os.path.join(directory, "meta.lance")):
        raise missing_bank(uri)
    reader = BankReader(uri, directory)
    try:
        meta = reader.meta()
        if int(meta.get("schema_version", "0")) != SCHEMA_VERSION:
            return None
        if "journal" in meta:  # an operation is running or was killed: the Bank recovers it
            return None
        if at is not None:
            reader._at = versions_at(reader.history(), at)
            reader.at = at
    except ProtodbError:
        raise
    except Exception:  # noqa: BLE001 - whatever Lance could not read, the Bank reads or reports
        return None
    return reader
