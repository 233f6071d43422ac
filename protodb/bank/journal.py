"""All-or-nothing operations: a journal row that makes a multi-table write one step.

Lance commits one table at a time. An operation that writes several tables (``import``,
``merge``, ``vocab create``, ``restore``) runs inside :meth:`Journal.atomic`: before its first
write it records, as a ``journal`` row in the ``meta`` table, every table's version and tags and
the bank version its history row will have; its last write is that history row; then the
journal row is deleted. A process killed in between leaves the journal behind, and the next
open of the bank finishes the story (:meth:`Journal.recover`):

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

from protodb.bank.commit import retry_commit
from protodb.bank.rows import meta_table
from protodb.bank.schema import now, sql_str
from protodb.errors import BankError

JOURNAL_KEY = "journal"
STALE_ENV = "PROTODB_JOURNAL_STALE_S"
UNJOURNALLED = ("meta",)  # the journal lives there; no operation writes anything else to it


class Journal:
    """The journal of ``bank`` (module docstring), a part of :class:`protodb.bank.store.Bank`;
    it works through the bank's public reads, writes, tags and locks.

    recovered: what the last :meth:`recover` did ("completed OP" / "rolled back ... OP"), or
    None; pending: the journal of an operation left unrecovered (a live writer holds the lock,
    or this process cannot write the bank), or None."""

    def __init__(self, bank) -> None:
        self.bank = bank
        self.recovered: str | None = None
        self.pending: dict | None = None

    # ------------------------------------------------------------------ the journal row

    def read(self) -> dict | None:
        """The journal row of the bank, or None when no operation is unfinished."""
        rows = self.bank.read("meta", f"key = {sql_str(JOURNAL_KEY)}").to_pylist()
        if not rows:
            return None
        try:
            return json.loads(rows[0]["value"])
        except json.JSONDecodeError:
            return {"op": "unknown", "versions": {}, "tags": {}, "log_version": -1}

    def _clear(self) -> None:
        meta = self.bank.table("meta")
        retry_commit(lambda: meta.delete(f"key = {sql_str(JOURNAL_KEY)}"))

    @contextmanager
    def atomic(self, op: str) -> Iterator[None]:
        """Run a multi-table write as one step (module docstring). Call it holding the commit
        lock; the block must end with the operation's ``log`` row."""
        bank = self.bank
        bank.check_writable()
        with bank.commit_lock():
            versions = bank.versions()
            journal = {
                "op": op,
                "versions": versions,
                "tags": {t: bank.tags(t) for t in versions if t not in UNJOURNALLED},
                "log_version": bank.table("log").count_rows() + 1,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": now().isoformat(),
            }
            bank.append("meta", meta_table({JOURNAL_KEY: json.dumps(journal, sort_keys=True)}))
            try:
                yield
            except BaseException:
                self._roll_back(journal)
                self._clear()
                raise
            self._clear()

    # ------------------------------------------------------------------ recovery

    def _completed(self, journal: dict) -> bool:
        want = int(journal.get("log_version", -1))
        rows = self.bank.read("log", f"version = {want}", columns=["op"]).to_pylist()
        return bool(rows) and rows[0]["op"] == journal.get("op")

    def _roll_back(self, journal: dict) -> None:
        """Every table (and its tags) back to the journal's versions; new tables dropped."""
        bank = self.bank
        before = {k: int(v) for k, v in journal.get("versions", {}).items()}
        tags = journal.get("tags", {})
        for name in bank.table_names():
            if name in UNJOURNALLED:
                continue
            if name not in before:
                bank.tables.drop(name)
                continue
            was = {k: int(v) for k, v in tags.get(name, {}).items()}
            for tag, version in bank.tags(name).items():
                if tag not in was:
                    bank.untag(name, tag)
                elif version != was[tag]:
                    bank.tag(name, tag, was[tag])
            for tag, version in was.items():
                if tag not in bank.tags(name):
                    bank.tag(name, tag, version)
            tbl = bank.table(name)
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
        journal = self.read()
        if journal is None:
            return None
        if not self.bank.has_lock() and not self._stale(journal):
            self.pending = journal
            return None
        try:
            with self.bank.commit_lock(wait=False):
                journal = self.read()  # the lock holder may have finished meanwhile
                if journal is None:
                    return None
                op = journal.get("op", "unknown")
                if self._completed(journal):
                    what = f"completed {op}"
                else:
                    self._roll_back(journal)
                    what = f"rolled back an interrupted {op}"
                self._clear()
        except BlockingIOError:
            self.pending = journal  # a live writer holds the lock
            return None
        except (OSError, RuntimeError, ValueError, BankError):  # a bank this process cannot write
            self.pending = journal
            return None
        self.recovered = what
        return what

    def pending_versions(self) -> dict[str, int] | None:
        """The table versions reads should see while an unfinished operation's journal is
        present and not recovered (None when there is none, or it completed)."""
        journal = self.pending
        if journal is None or self._completed(journal):
            return None
        return {k: int(v) for k, v in journal.get("versions", {}).items()}

    def settle(self) -> bool:
        """Before a write: a local bank waits for the live operation that holds the lock and
        recovers what it left (True: reads need no longer hide it); an object store with a
        fresh journal refuses the write. False when there was nothing pending."""
        journal = self.pending
        if journal is None:
            return False
        if self.bank.has_lock():
            with self.bank.commit_lock():
                self.pending = None
                self.recover()
            if self.pending is None:
                return True
        raise BankError(
            f"an {journal.get('op', 'operation')!r} into bank {self.bank.uri!r} is running or "
            f"was interrupted; wait for it (or for its journal to go stale, {STALE_ENV} "
            "seconds) and run this again"
        )
