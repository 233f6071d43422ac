"""``add --ray``: units built on Ray actors, committed by the driver alone.

The session Ray cluster (conftest) and moto's S3 (tests/conftest.py): 4 classes on Ray into an
S3 bank read exactly as a one-process run into a local directory; a worker lost mid-run costs
its unit at most; a driver killed mid-run leaves whole sets only, and a re-run finishes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bank.test_journal import content

import protodb
from protodb.bank.commit import FAULT_ENV
from protodb.bank.store import open_bank
from protodb.errors import ProtodbError
from protodb.scale.add import FAULT_WORKER_ENV, RayExecutor
from protodb.settings import torch_threads

CLASSES = ["red apple", "grass", "blue cup", "sky"]
ARGS = dict(n=2, steps=2, extractors=("dinov2",), progress=False)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """The reference: the 4 classes added by one process (one torch thread, as each actor)."""
    path = tmp_path_factory.mktemp("one") / "bank"
    db = protodb.connect(path, profile="tiny", device="cpu")
    with torch_threads(1):
        db.add(CLASSES, **ARGS)
    return content(path)


def _whole_sets_only(uri: str) -> None:
    """Every set the bank lists has all its prototype rows and its history row; no class row
    is without a set; no journal is left (opening recovers)."""
    bank = open_bank(uri, create=False)
    sets = bank.sets().to_pylist()
    logged = [e.detail["class"] for e in bank.history() if e.op == "add"]
    for s in sets:
        rows = bank.read(s["prototype_table"], f"class_key = '{s['class_key']}'")
        assert rows.num_rows == s["n_fg"] + s["n_bg"], s["class_key"]
        assert s["name"] in logged
    classes = set(bank.read("classes").column("class_key").to_pylist())
    assert classes == {s["class_key"] for s in sets}
    assert content(uri)["journal"] is False


def test_add_on_ray_into_s3_reads_as_one_process(ray_cluster, ray_timeout, s3_server, one_process):
    uri = s3_server.uri()
    db = protodb.connect(uri, profile="tiny", device="cpu")
    ex = RayExecutor(address="local", workers=2)
    results = db.add(CLASSES, executor=ex, **ARGS)
    assert [r.status for r in results] == ["added"] * 4
    assert [r.name for r in results] == CLASSES
    assert content(uri) == one_process  # every table, row for row, history included
    assert sum(w.units for w in ex.stats) == 4 and len(ex.stats) == 2
    # done units are skipped before anything is scheduled
    again = RayExecutor(address="local", workers=2)
    assert [r.status for r in db.add(CLASSES, executor=again, **ARGS)] == ["exists"] * 4
    assert again.stats == []


def test_a_lost_worker_costs_its_unit_at_most(
    ray_cluster, ray_timeout, tmp_path, monkeypatch, one_process
):
    """An actor dies mid-unit: Ray restarts it and the unit is retried (retries=1); with no
    retry left the unit is reported lost in one line, the rest is committed, a re-run adds
    only the lost unit."""
    marker = tmp_path / "killed"
    monkeypatch.setenv(FAULT_WORKER_ENV, str(marker))
    uri = str(tmp_path / "retried")
    db = protodb.connect(uri, profile="tiny", device="cpu")
    results = db.add(CLASSES, executor=RayExecutor(workers=2, retries=1), **ARGS)
    assert marker.exists() and [r.status for r in results] == ["added"] * 4
    assert content(uri) == one_process

    marker.unlink()
    uri = str(tmp_path / "lost")
    db = protodb.connect(uri, profile="tiny", device="cpu")
    with pytest.raises(ProtodbError, match=r"1 unit\(s\) lost with their worker"):
        db.add(CLASSES, executor=RayExecutor(workers=2, retries=0), **ARGS)
    lost, _ = json.loads(marker.read_text())
    _whole_sets_only(uri)
    assert len(open_bank(uri, create=False).sets()) == 3
    monkeypatch.delenv(FAULT_WORKER_ENV)
    again = protodb.connect(uri, profile="tiny", device="cpu")
    redo = again.add(CLASSES, executor=RayExecutor(workers=2), **ARGS)
    assert [r.name for r in redo if r.status == "added"] == [lost]
    _whole_sets_only(uri)
    # the same rows; only the order of commits (sets' row pointers, history) differs
    got = content(uri)
    assert {k: v for k, v in got.items() if k not in ("sets", "log")} == {
        k: v for k, v in one_process.items() if k not in ("sets", "log")
    }


def test_a_killed_driver_leaves_whole_sets_and_a_rerun_finishes(
    ray_cluster, ray_address, ray_timeout, tmp_path, one_process
):
    """``protodb add --from FILE --ray ADDRESS`` SIGKILLed after some of its commits (the
    driver writes, the session cluster's actors build): the bank opens with whole sets only,
    and the same command run again completes it to the one-process bank."""
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(CLASSES) + "\n")
    uri = str(tmp_path / "bank")
    cmd = [
        sys.executable, "-c", "from protodb.cli.app import main; main()",
        "--bank", uri, "--profile", "tiny", "add", "--from", str(names),
        "--n", "2", "--steps", "2", "--extractor", "dinov2", "-q", "--ray", ray_address,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), FAULT_ENV: "12"}
    env.pop(FAULT_WORKER_ENV, None)
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == -9, run.stderr[-2000:]
    _whole_sets_only(uri)
    done = len(open_bank(uri, create=False).sets())
    assert 0 < done < 4, done  # killed mid-run, after a set and before the last
    env.pop(FAULT_ENV)
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("already in the bank") == done
    got = content(uri)
    # every row as one process makes it; the history differs only in what it says was
    # generated (a unit cut after its support images reuses them)
    assert got.pop("log") and got == {k: v for k, v in one_process.items() if k != "log"}


def test_ray_usage_errors_are_one_line(tmp_path):
    base = [sys.executable, "-c", "from protodb.cli.app import main; main()", "--bank",
            str(tmp_path / "b"), "--profile", "tiny", "add", "x", "--n", "1"]  # fmt: skip
    for extra, needle in (
        (["--ray=images/"], "is not a Ray address"),
        (["--ray", "127.0.0.1:1"], "nothing answers there"),
        (["--workers", "2"], "needs --ray"),
        (["--ray", "--workers", "0"], "--workers"),
    ):
        run = subprocess.run(base + extra, capture_output=True, text=True, timeout=120)
        assert run.returncode != 0
        lines = [ln for ln in run.stderr.splitlines() if ln.startswith("error")]
        assert len(lines) == 1 and needle in lines[0], run.stderr
        assert "Traceback" not in run.stderr
    assert not Path(tmp_path / "b").exists()
