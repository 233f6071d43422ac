"""Reads of a bank's rows, shared by the bank (:class:`~protodb.bank.store.Bank`) and its
read-only view (:class:`~protodb.bank.readonly.BankReader`): one ``read`` of a table at its
latest, a given or the pinned version, and the lookups made of it (sets, classes, support
images, masks, meta, history). The fast prototype load is :mod:`~protodb.bank.loads`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from protodb.bank.history import log_entries
from protodb.bank.schema import LogEntry, SetKey, read_sets, sql_str

UNPINNED = ("log", "meta")  # read at their latest even on a bank opened at a version


class RowReads:
    """Reads through :meth:`dataset` (a table's Lance dataset at a version, latest if None) and
    :meth:`schema_of` (a table's Arrow schema), which the bank and the read-only view each give.

    ``_at``: the table versions every read without a version sees (a bank opened at a version,
    or an unfinished operation's versions before it), or None: the latest."""

    _at: dict[str, int] | None = None

    def dataset(self, name: str, version: int | None = None):
        raise NotImplementedError

    def schema_of(self, name: str) -> pa.Schema:
        raise NotImplementedError

    @property
    def pins(self) -> dict[str, int] | None:
        """The table versions reads without a version see (None: the latest)."""
        return self._at

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
        if version is None and self._at is not None and name not in UNPINNED:
            version = self._at.get(name)
            if version is None:
                empty = self.schema_of(name).empty_table()
                return empty.select(list(columns)) if columns else empty
        cols = list(columns) if columns else None
        ds = self.dataset(name, version)
        if name == "sets":  # recipe ids also at versions from before schema 3
            return read_sets(ds, where, cols)
        return ds.to_table(filter=where, columns=cols)

    def meta(self) -> dict[str, str]:
        meta = self.read("meta")
        return dict(zip(meta["key"].to_pylist(), meta["value"].to_pylist(), strict=True))

    def history(self) -> list[LogEntry]:
        return log_entries(self.read("log"))

    def find_set(self, key: SetKey) -> dict | None:
        """The completion record of a prototype set (a ``sets`` row as a dict), or None."""
        rows = [r for r in self.read("sets", key.where()).to_pylist() if key.matches(r)]
        return rows[0] if rows else None

    def has_set(self, key: SetKey) -> bool:
        return self.find_set(key) is not None

    def sets(self, class_key: str | None = None) -> pa.Table:
        where = None if class_key is None else f"class_key = {sql_str(class_key)}"
        return self.read("sets", where)

    def classes(self) -> pa.Table:
        return self.read("classes")

    def supports(
        self, class_key: str, generator_id: str, seed: int, *, version: int | None = None
    ) -> pa.Table:
        """The ``supports`` rows of a (class, generator, seed) support set, in no set order
        (``version``: of the ``supports`` table; latest if None)."""
        return self.read("supports", supports_where(class_key, generator_id, seed), version)

    def masks(
        self,
        class_key: str,
        generator_id: str,
        seed: int,
        n: int,
        mask_source: str,
        *,
        version: int | None = None,
    ) -> pa.Table:
        """The ``masks`` rows cut by ``mask_source`` from a set of ``n`` support images, in no
        set order; an index may repeat where two writers raced (the rows are equal)."""
        where = masks_where(class_key, generator_id, seed, n, mask_source)
        return self.read("masks", where, version)


def supports_where(class_key: str, generator_id: str, seed: int) -> str:
    """The filter of a support set's rows (``supports``; also the first part of ``masks``',
    ``cells``' and prototype tables' filters)."""
    return (
        f"class_key = {sql_str(class_key)} AND generator_id = {sql_str(generator_id)}"
        f" AND seed = {int(seed)}"
    )


def masks_where(class_key: str, generator_id: str, seed: int, n: int, mask_source: str) -> str:
    """The filter of the ``masks`` rows of a set of ``n`` images cut by ``mask_source``."""
    return (
        f"{supports_where(class_key, generator_id, seed)} AND n = {int(n)}"
        f" AND mask_source = {sql_str(mask_source)}"
    )
