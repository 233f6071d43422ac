"""Commits and locks: how several processes write one bank safely.

Keyed writes check and commit under the bank's commit lock: a ``flock`` on a file in a local
bank directory, a lease object written with conditional puts on S3
(:mod:`~protodb.bank.objlock`); other object stores (gs://, az://) have none (single writer,
see the README). On a local bank writers hold a shared writer lock for their whole operation,
which ``gc`` takes exclusively; on S3 every commit is made under the commit lock and ``gc``
holds it throughout. Lance commit conflicts are retried with backoff (:func:`retry_commit`).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from protodb.errors import BankError

COMMIT_LOCK = "_protodb_commit.lock"
WRITER_LOCK = "_protodb_writers.lock"
S3_LOCK_ENV = "PROTODB_S3_LOCK"

T = TypeVar("T")


def current_user() -> str:
    """The login name recorded with bank versions and exports ("unknown" when there is none)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error
        return "unknown"


def _is_conflict(err: Exception) -> bool:
    text = str(err).lower()
    return any(w in text for w in ("conflict", "retryable", "concurrent"))


FAULT_ENV = "PROTODB_FAULT_KILL_AFTER_COMMITS"
_commits = 0


def commit_point() -> None:
    """Count a finished Lance commit of this process. A fault-injection hook for the crash
    tests: with ``PROTODB_FAULT_KILL_AFTER_COMMITS=N`` set, the process SIGKILLs itself right
    after its N-th commit, so a test can stop a write at every commit boundary in turn."""
    global _commits
    _commits += 1
    limit = os.environ.get(FAULT_ENV)
    if limit and _commits == int(limit):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def retry_commit(fn: Callable[[], T], *, attempts: int = 8, base_s: float = 0.05) -> T:
    """Run a Lance commit, retrying commit conflicts with exponential backoff and jitter."""
    for attempt in range(attempts):
        try:
            out = fn()
            commit_point()
            return out
        except Exception as err:  # noqa: BLE001 - Lance raises plain OSError/RuntimeError
            if attempt == attempts - 1 or not _is_conflict(err):
                raise
            time.sleep(base_s * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


class Locks:
    """The locks of the bank at ``uri`` (``directory``: its local directory, None for an object
    store), a part of :class:`protodb.bank.store.Bank`."""

    def __init__(self, uri: str, directory: str | None) -> None:
        self.uri = uri
        self.dir = directory
        self._depth = 0  # re-entrant commit lock: held while > 0
        self._fd: int | None = None
        self._object: object | None = None

    def has_lock(self) -> bool:
        """Whether this bank has a commit lock: a local directory, or S3 (unless
        ``PROTODB_S3_LOCK=0``: one writer at a time, see the README)."""
        if self.dir is not None:
            return True
        return self.uri.startswith("s3://") and os.environ.get(S3_LOCK_ENV, "1") != "0"

    def _object_lock(self):
        if self._object is None:
            from protodb.bank.objlock import S3Lock

            self._object = S3Lock(self.uri)
        return self._object

    def lock_file(self, name: str) -> int:
        """Open (creating) a lock file of a local bank; a bank this user cannot write is one
        line (reads need no lock and keep working)."""
        try:
            return os.open(os.path.join(self.dir, name), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise BankError(
                f"bank {self.uri!r} is read-only here ({err.strerror}): it can be read but not "
                "written; ask its owner for write access, or `protodb export` it and import "
                "the export into a bank of your own"
            ) from None

    @contextlib.contextmanager
    def commit_lock(self, *, wait: bool = True) -> Iterator[None]:
        """Exclusive, re-entrant lock for a check-then-commit section (local banks and S3; a
        no-op on other object stores); ``wait=False`` raises BlockingIOError when another
        process holds it."""
        if self.dir is None:
            if not self.has_lock():
                yield
                return
            if self._depth == 0:
                self._object_lock().acquire(wait=wait)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._object_lock().release()
            return
        import fcntl

        if self._depth == 0:
            fd = self.lock_file(COMMIT_LOCK)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    @contextlib.contextmanager
    def writer(self, *, exclusive: bool = False, wait: bool = True) -> Iterator[None]:
        """Mark this process as an active writer for the block (shared lock; ``gc`` takes it
        exclusively). ``wait=False`` raises BankError instead of waiting. A no-op on object
        stores: on S3 every commit is made under the commit lock, which ``gc`` holds
        throughout."""
        if self.dir is None:
            yield
            return
        import fcntl

        fd = self.lock_file(WRITER_LOCK)
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
