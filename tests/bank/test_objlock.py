"""The commit lock of a bank on S3 (protodb.bank.objlock), against moto's S3 server."""

from __future__ import annotations

import json
import time

import pytest

from protodb.bank.objlock import LOCK_NAME, TTL_ENV, S3Lock


def _lock_key(uri: str) -> str:
    return uri.split("/", 3)[3] + "/" + LOCK_NAME


def test_one_holder_at_a_time_and_release(s3_server):
    uri = s3_server.uri()
    a, b = S3Lock(uri), S3Lock(uri)
    a.acquire()
    assert LOCK_NAME in s3_server.keys(uri)
    with pytest.raises(BlockingIOError):
        b.acquire(wait=False)
    a.release()
    assert LOCK_NAME not in s3_server.keys(uri)
    b.acquire(wait=False)
    b.release()


def test_an_expired_lease_is_taken_over_and_a_live_one_renewed(s3_server, monkeypatch):
    uri = s3_server.uri()
    monkeypatch.setenv(TTL_ENV, "0.6")
    holder = S3Lock(uri)
    holder.acquire()
    time.sleep(1.5)  # over twice the TTL: renewed every 0.2 s, so still held
    with pytest.raises(BlockingIOError):
        S3Lock(uri).acquire(wait=False)
    holder._stop_renewal()  # the holder stalls (or lost the network): its lease runs out
    time.sleep(0.8)
    other = S3Lock(uri)
    other.acquire(wait=False)
    holder.release()  # a late release does not remove the new holder's lock
    assert LOCK_NAME in s3_server.keys(uri)
    with pytest.raises(BlockingIOError):
        S3Lock(uri).acquire(wait=False)
    other.release()


def test_a_lock_of_a_dead_process_of_this_host_is_taken_over_at_once(s3_server):
    import socket

    uri = s3_server.uri()
    body = {"host": socket.gethostname(), "pid": 2**22 + 12345, "expires": time.time() + 3600}
    s3_server.client.put_object(
        Bucket="protodb-test", Key=_lock_key(uri), Body=json.dumps(body).encode()
    )
    lock = S3Lock(uri)
    lock.acquire(wait=False)
    lock.release()
    body["host"] = "another-host"  # elsewhere: only the lease's end tells
    s3_server.client.put_object(
        Bucket="protodb-test", Key=_lock_key(uri), Body=json.dumps(body).encode()
    )
    with pytest.raises(BlockingIOError):
        lock.acquire(wait=False)
