"""One local Ray cluster for the whole session (REFERENCE 5): address "local", 4 logical CPUs
on this 2-core machine so that actors at fractional CPUs leave room for Ray Data's tasks, a
256 MiB object store, no dashboard, token auth off; every Ray test runs under an alarm, since
Ray's failure mode on a starved cluster is to wait forever."""

from __future__ import annotations

import signal

import pytest

RAY_TEST_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """The session's Ray cluster, as protodb.scale.cluster.ClusterInfo (address "local")."""
    pytest.importorskip("ray")
    from protodb.scale.cluster import connect, shutdown

    info = connect("local", num_cpus=4)
    try:
        yield info
    finally:
        shutdown(info)


@pytest.fixture
def ray_timeout():
    """Fail (rather than hang) a test that runs past RAY_TEST_TIMEOUT_S seconds."""

    def fire(signum, frame):
        raise TimeoutError(f"Ray test ran past {RAY_TEST_TIMEOUT_S} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(RAY_TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def ray_address(ray_cluster) -> str:
    """HOST:PORT of the session cluster's head, for CLI subprocesses that join it."""
    import ray

    return ray.get_runtime_context().gcs_address
