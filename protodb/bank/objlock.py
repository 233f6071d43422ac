"""The commit lock of a bank on S3: a lease object written with a conditional put.

A local bank's commit lock is a ``flock`` (:mod:`~protodb.bank.commit`). S3 has no locks, but
it has conditional writes: ``PutObject`` with ``If-None-Match: *`` creates an object only if
none is there, and with ``If-Match: ETAG`` replaces it only if it is unchanged (HTTP 412
otherwise; AWS S3 since 2024, and the S3 emulators that follow it, moto included). The lock of
a bank at ``s3://bucket/prefix`` is the object ``prefix/_protodb_commit.lock``:

- acquire: create it with ``If-None-Match: *``; its body names the holder (host, pid, a random
  token) and when its lease ends (``PROTODB_S3_LOCK_TTL_S``, 60 s);
- while held, a thread renews the lease every third of the TTL with ``If-Match`` on the ETag it
  wrote, so a long ``gc`` or ``import`` keeps it;
- release: delete it (after checking the ETag is still ours);
- a lock whose lease ended (its holder was killed, or lost the network) is taken over with
  ``If-Match`` on the ETag read, so of two processes breaking it at once exactly one wins; a
  lock held by a process of this host that no longer exists is taken over at once.

Everything protodb commits to a bank on S3 is committed under this lock (keyed checks and their
commits, whole ``import`` / ``merge`` / ``restore`` / ``vocab create`` operations, all of
``gc``), so two writers on different machines never both pass a key check, and a journal found
while the lock is free belongs to a dead process. Requests go through boto3, configured from
the same environment LanceDB reads: ``AWS_ENDPOINT`` (or ``AWS_ENDPOINT_URL``), ``AWS_REGION``
(or ``AWS_DEFAULT_REGION``), the keys from boto3's usual chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
import uuid
from urllib.parse import urlparse

from protodb.errors import BankError

LOCK_NAME = "_protodb_commit.lock"
TTL_ENV = "PROTODB_S3_LOCK_TTL_S"
WAIT_ENV = "PROTODB_S3_LOCK_WAIT_S"


def s3_client():
    """A boto3 S3 client from the environment LanceDB reads (endpoint, region, keys)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise BankError(
            "writing a bank on s3:// needs boto3 for its commit lock; "
            'pip install "protodb[s3]" (or pip install boto3)'
        ) from None
    endpoint = (
        os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT")
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def _status(err: Exception) -> int:
    response = getattr(err, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class S3Lock:
    """The exclusive, lease-based commit lock of the bank at ``uri`` (``s3://bucket/prefix``).

    Not re-entrant by itself (the Bank counts depth); one instance per Bank."""

    def __init__(self, uri: str) -> None:
        parsed = urlparse(uri)
        self.uri = uri
        self.bucket = parsed.netloc
        prefix = parsed.path.strip("/")
        self.key = f"{prefix}/{LOCK_NAME}" if prefix else LOCK_NAME
        self.ttl = float(os.environ.get(TTL_ENV, "60"))
        self._client = None
        self._etag: str | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client()
        return self._client

    def _body(self) -> bytes:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "token": uuid.uuid4().hex,
                "expires": time.time() + self.ttl,
            }
        ).encode()

    def _put(self, **condition) -> str | None:
        """Conditional put of a fresh lease; its ETag, or None on 412 (precondition failed) or
        409 (a concurrent conditional write won)."""
        try:
            out = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=self._body(), **condition
            )
        except Exception as err:  # noqa: BLE001 - botocore ClientError and friends
            if _status(err) in (409, 412):
                return None
            if _status(err) == 403:
                raise BankError(
                    f"bank {self.uri!r} is read-only here (access denied writing its lock "
                    "object): it can be read but not written; ask its owner for write access"
                ) from None
            raise BankError(f"cannot take the commit lock of bank {self.uri!r}: {err}") from None
        return out["ETag"]

    def _holder(self) -> tuple[dict, str] | None:
        """The lock object's body and ETag, or None when there is none."""
        try:
            out = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as err:  # noqa: BLE001
            if _status(err) == 404:
                return None
            raise BankError(f"cannot read the commit lock of bank {self.uri!r}: {err}") from None
        raw = out["Body"].read()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = {}
        return (body if isinstance(body, dict) else {}), out["ETag"]

    @staticmethod
    def _dead(body: dict) -> bool:
        try:
            if float(body.get("expires", 0)) < time.time():
                return True
            if body.get("host") == socket.gethostname():
                return not _pid_alive(int(body.get("pid", -1)))
        except (TypeError, ValueError):
            return True
        return False

    def try_acquire(self) -> bool:
        """One attempt: create the lock, or take over a dead holder's. True when held."""
        etag = self._put(IfNoneMatch="*")
        if etag is None:
            found = self._holder()
            if found is None:
                etag = self._put(IfNoneMatch="*")
            elif self._dead(found[0]):
                etag = self._put(IfMatch=found[1])
        if etag is None:
            return False
        self._etag = etag
        self._start_renewal()
        return True

    def acquire(self, *, wait: bool = True) -> None:
        """Take the lock; waits (with backoff, up to ``PROTODB_S3_LOCK_WAIT_S``, 600 s) unless
        ``wait=False``, which raises BlockingIOError when another process holds it."""
        deadline = time.monotonic() + float(os.environ.get(WAIT_ENV, "600"))
        delay = 0.05
        while not self.try_acquire():
            if not wait:
                raise BlockingIOError(f"the commit lock of {self.uri!r} is held")
            if time.monotonic() > deadline:
                raise BankError(
                    f"bank {self.uri!r}: another writer has held its commit lock for over "
                    f"${WAIT_ENV} seconds; run this again later"
                )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    def release(self) -> None:
        self._stop_renewal()
        etag, self._etag = self._etag, None
        if etag is None:
            return
        # a failure here leaves the lease to run out by itself
        with contextlib.suppress(Exception):
            found = self._holder()
            if found is not None and found[1] == etag:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)

    # ------------------------------------------------------------------ renewal

    def _start_renewal(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, args=(self._stop,), daemon=True)
        self._thread.start()

    def _stop_renewal(self) -> None:
        if self._stop is not None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
        self._stop = self._thread = None

    def _renew(self, stop: threading.Event) -> None:
        while not stop.wait(self.ttl / 3):
            etag = self._etag
            if etag is None:
                return
            try:
                new = self._put(IfMatch=etag)
            except BankError:
                continue  # a network hiccup: try again before the lease ends
            if new is None:
                return  # taken over (this process stalled past its lease): nothing to renew
            self._etag = new
