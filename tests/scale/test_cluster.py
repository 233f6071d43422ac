"""protodb.scale.cluster: the one environment policy of Ray actors (``add --ray`` and
``segment --ray`` both build their actors' ``runtime_env`` from :func:`actor_env`)."""

from __future__ import annotations

import pytest

from protodb.bank.commit import FAULT_ENV
from protodb.scale.add import FAULT_WORKER_ENV
from protodb.scale.cluster import ACTOR_ENV_EXCLUDED, actor_env

DRIVER = {
    "AWS_ENDPOINT": "http://127.0.0.1:9000",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "HF_HOME": "/models/hf",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DIFFUSERS_CACHE": "/models/diffusers",
    "PROTODB_PROFILE": "tiny",
    FAULT_WORKER_ENV: "/tmp/marker",
    FAULT_ENV: "3",
    "OMP_NUM_THREADS": "16",
    "MKL_NUM_THREADS": "16",
    "CUDA_VISIBLE_DEVICES": "0",
    "PATH": "/usr/bin",
    "HOME": "/root",
    "XHF_HOME": "/not/a/prefix/match",
}


def test_actor_env_forwards_the_store_the_hubs_and_protodb_settings_only():
    env = actor_env(DRIVER)
    assert env == {
        "AWS_ENDPOINT": "http://127.0.0.1:9000",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "HF_HOME": "/models/hf",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DIFFUSERS_CACHE": "/models/diffusers",
        "PROTODB_PROFILE": "tiny",
        FAULT_WORKER_ENV: "/tmp/marker",  # the workers' own fault point travels
    }
    # the driver's commit fault point stays with the driver, the one process that commits
    assert FAULT_ENV in ACTOR_ENV_EXCLUDED and FAULT_ENV not in env


def test_actor_env_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv(FAULT_ENV, "2")
    env = actor_env()
    assert env["HF_HUB_OFFLINE"] == "1"
    assert "OMP_NUM_THREADS" not in env and FAULT_ENV not in env
    assert actor_env({}) == {}


def test_an_actor_started_with_actor_env_sees_it(ray_cluster, ray_timeout, monkeypatch):
    """The runtime environment reaches the actor's process: an ``HF_*`` variable set after the
    cluster started arrives, the driver's thread count does not (Ray sizes OMP_NUM_THREADS from
    the actor's CPUs)."""
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("HF_PROTODB_PROBE", "set-by-the-driver")
    monkeypatch.setenv("OMP_NUM_THREADS", "16")

    @ray.remote(num_cpus=0.25)
    class Probe:
        def env(self, names: list[str]) -> dict:
            import os

            return {k: os.environ.get(k) for k in names}

    probe = Probe.options(runtime_env={"env_vars": actor_env()}).remote()
    seen = ray.get(probe.env.remote(["HF_PROTODB_PROBE", "OMP_NUM_THREADS"]), timeout=120)
    ray.kill(probe)
    assert seen["HF_PROTODB_PROBE"] == "set-by-the-driver"
    assert seen["OMP_NUM_THREADS"] != "16"
