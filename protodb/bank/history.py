"""Bank versions and tags: the ``log`` table (one row per operation, with every table's version
after it), reading the bank as it was at a version (``--at``), and the Lance tags that pin
vocabularies.
"""

from __future__ import annotations

import json

import pyarrow as pa

from protodb.bank.commit import current_user, retry_commit
from protodb.bank.rows import log_table
from protodb.bank.schema import LogEntry, now
from protodb.errors import NotFoundError


class History:
    """The ``log`` rows and Lance tags of ``bank``, a part of :class:`protodb.bank.store.Bank`
    (the bank's history reads, :meth:`~protodb.bank.reads.RowReads.history`, need no part)."""

    def __init__(self, bank) -> None:
        self.bank = bank

    def log(self, op: str, detail: dict) -> LogEntry:
        """Append a log row (a new bank version) recording the table versions now."""
        bank = self.bank
        bank.check_writable()
        with bank.commit_lock():
            version = bank.table("log").count_rows() + 1
            entry = LogEntry(version, op, detail, bank.versions(), current_user(), now())
            bank.append("log", log_table(entry))
        return entry

    def tag(self, table: str, tag: str, version: int) -> None:
        """Create (or move) a Lance tag on a table version; tagged versions survive gc."""
        tags = self.bank.table(table).tags
        if tag in tags.list():
            retry_commit(lambda: tags.update(tag, version))
        else:
            retry_commit(lambda: tags.create(tag, version))

    def untag(self, table: str, tag: str) -> None:
        """Delete a Lance tag (its version becomes collectable by gc)."""
        tags = self.bank.table(table).tags
        if tag in tags.list():
            retry_commit(lambda: tags.delete(tag))

    def tags(self, table: str) -> dict[str, int]:
        """Tag name -> version of one table."""
        return {k: int(v["version"]) for k, v in self.bank.table(table).tags.list().items()}


def log_entries(log: pa.Table) -> list[LogEntry]:
    """The rows of the ``log`` table as entries, oldest first (the bank's versions)."""
    rows = log.to_pylist()
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


def versions_at(entries: list[LogEntry], version: int) -> dict[str, int]:
    """The table versions of bank version ``version`` (``protodb --at``), from its history."""
    if not 1 <= version <= len(entries):
        raise NotFoundError(
            f"bank version {version} does not exist (versions 1 to {len(entries)}); "
            "see `protodb history`"
        )
    return dict(entries[version - 1].versions)
