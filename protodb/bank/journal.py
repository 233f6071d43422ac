"""All-or-nothing operations: a journal row that makes a multi-table write one step.

Lance commits one table at a time. An operation that writes several tables (``import``,
``merge``, ``vocab create``, ``restore``) runs inside :meth:`Journaled.atomic`: before its first
write it records, as a ``journal`` row in the ``meta`` table, every table's version and tags and
the bank version its history row will have; its last write is that history row; then the
journal row is deleted. A process killed in between leaves the journal behind, and the next
open of the bank finishes the story (:meth:`Journaled.recover`):

- the operation's history row is there: it completed; only the journal row goes;
- it is not: every table goes back to its version before (tables the operation created are
  dropped, tags put back), so the bank reads exactly as before; nothing is added to history.

Recovery needs the commit lock, taken without waiting: a bank whose lock is held has a live
writer (a killed one holds no ``flock``; on S3 its lease object runs out, or names a dead
process of this host), and is left alone. Object stores without a lock (gs://, az://) have no
way to tell; a journal there is recovered once it is older than ``PROTODB_JOURNAL_STALE_S``
(3600 s). Until it is, and on a bank this process cannot write, reads see the versions the
journal recorded, so an unfinished operation is never half visible, and writes are refused with
one line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

from protodb.bank.commit import retry_commit
from protodb.bank.schema import now, sql_str, table_schema
from protodb.errors import BankError

JOURNAL_KEY = "journal"
STALE_ENV = "PROTODB_JOURNAL_STALE_S"
UNJOURNALLED = ("meta",)  # the journal lives there; no operation writes anything else to it


class Journaled:
    """The journal, mixed into :class:`protodb.bank.store.Bank`."""

    recovered: str | None = None
    _pending: dict | None = None

    # ------------------------------------------------------------------ the journal row

    def _journal(self) -> dict | None:
        rows = self.read("meta", f"key = {sql_str(JOURNAL_KEY)}").to_pylist()
        if not rows:
            return None
        try:
            return json.loads(rows[0]["value"])
        except json.JSONDecodeError:
            return {"op": "unknown", "versions": {}, "tags": {}, "log_version": -1}

    def _clear_journal(self) -> None:
        meta = self.table("meta")
        retry_commit(lambda: meta.delete(f"key = {sql_str(JOURNAL_KEY)}"))

    @contextmanager
    def atomic(self, op: str) -> Iterator[None]:
        """Run a multi-table write as one step (module docstring). Call it holding the commit
        lock; the block must end with the operation's :meth:`log` row."""
        self._check_writable()
        with self.commit_lock():
            versions = self.versions()
            journal = {
                "op": op,
                "versions": versions,
                "tags": {t: self.tags(t) for t in versions if t not in UNJOURNALLED},
                "log_version": self.table("log").count_rows() + 1,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": now().isoformat(),
            }
            row = {"key": [JOURNAL_KEY], "value": [json.dumps(journal, sort_keys=True)]}
            self.append("meta", pa.table(row, schema=table_schema("meta")))
            try:
                yield
            except BaseException:
                self._roll_back(journal)
                self._clear_journal()
                raise
            self._clear_journal()

    # ------------------------------------------------------------------ recovery

    def _completed(self, journal: dict) -> bool:
        want = int(journal.get("log_version", -1))
        rows = self.read("log", f"version = {want}", columns=["op"]).to_pylist()
        return bool(rows) and rows[0]["op"] == journal.get("op")

    def _roll_back(self, journal: dict) -> None:
        """Every table (and its tags) back to the journal's versions; new tables dropped."""
        before = {k: int(v) for k, v in journal.get("versions", {}).items()}
        tags = journal.get("tags", {})
        for name in self.table_names():
            if name in UNJOURNALLED:
                continue
            if name not in before:
                self.db.drop_table(name)
                self._handles.pop(name, None)
                continue
            was = {k: int(v) for k, v in tags.get(name, {}).items()}
            for tag, version in self.tags(name).items():
                if tag not in was:
                    self.untag(name, tag)
                elif version != was[tag]:
                    self.tag(name, tag, was[tag])
            for tag, version in was.items():
                if tag not in self.tags(name):
                    self.tag(name, tag, version)
            tbl = self.table(name)
            if int(tbl.version) != before[name]:
                retry_commit(lambda t=tbl, v=before[name]: t.restore(v))

    def _stale(self, journal: dict) -> bool:
        limit = float(os.environ.get(STALE_ENV, "3600"))
        try:
            started = dt.datetime.fromisoformat(journal["started_at"])
        except (KeyError, TypeError, ValueError):
            return True
        return (now() - started).total_seconds() > limit

    def recover(self) -> str | None:
        """Finish an operation a killed process left (module docstring). Returns what was
        done ("completed OP" / "rolled back OP") or None; sets :attr:`recovered`."""
        journal = self._journal()
        if journal is None:
            return None
        if not self.has_lock() and not self._stale(journal):
            self._pending = journal
            return None
        try:
            with self.commit_lock(wait=False):
                journal = self._journal()  # the lock holder may have finished meanwhile
                if journal is None:
                    return None
                op = journal.get("op", "unknown")
                if self._completed(journal):
                    what = f"completed {op}"
                else:
                    self._roll_back(journal)
                    what = f"rolled back an interrupted {op}"
                self._clear_journal()
        except BlockingIOError:
            self._pending = journal  # a live writer holds the lock
            return None
        except (OSError, RuntimeError, ValueError, BankError):  # a bank this process cannot write
            self._pending = journal
            return None
        self.recovered = what
        return what

    def pending_versions(self) -> dict[str, int] | None:
        """The table versions reads should see while an unfinished operation's journal is
        present and not recovered (None when there is none, or it completed)."""
        journal = self._pending
        if journal is None or self._completed(journal):
            return None
        return {k: int(v) for k, v in journal.get("versions", {}).items()}

    def _settle_pending(self) -> None:
        """Before a write: a local bank waits for the live operation that holds the lock and
        recovers what it left; an object store with a fresh journal refuses the write."""
        journal = self._pending
        if journal is None:
            return
        if self.has_lock():
            with self.commit_lock():
                self._pending = None
                self.recover()
            if self._pending is None:
                self._at = None
                return
        raise BankError(
            f"an {journal.get('op', 'operation')!r} into bank {self.uri!r} is running or was "
            f"interrupted; wait for it (or for its journal to go stale, {STALE_ENV} seconds) "
            "and run this again"
        )
