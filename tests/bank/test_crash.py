"""kill -9 at random points of a write: the bank opens, no half set is visible, a re-run
completes and regenerates no stored support image."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bank_writer import EXTRACTOR, GENERATOR, n_rows, vectors, write_class

import protodb
from protodb.bank.schema import prototype_table_name
from protodb.bank.store import open_bank

WRITER = str(Path(__file__).resolve().parents[1] / "bank_writer.py")


def _check_no_half_set(uri: str) -> None:
    """Every visible set loads whole; no other prototype rows are visible."""
    bank = open_bank(uri, create=False)
    for s in bank.read("sets").to_pylist():
        vecs, meta = bank.load_prototypes(
            s["prototype_table"],
            s["extractor_id"],
            [(s["class_key"], s["generator_id"], s["seed"])],
        )
        assert vecs.shape[0] == s["n_fg"] + s["n_bg"] == s["row_count"]
        assert set(meta.column("class_key").to_pylist()) == {s["class_key"]}
    bank.history()  # the log reads


def _kill_at_random(cmd: list[str], window: tuple[float, float], rng: random.Random) -> None:
    """Start ``cmd``, wait for it to print "ready", then SIGKILL it after a random delay."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(rng.uniform(*window))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_kill9_during_bank_writes_leaves_no_half_set(tmp_path):
    """3 trials of a model-free writer killed at random points of its commits."""
    _kill_writer_trials(str(tmp_path / "bank"), trials=3, count=20, window=(0.05, 1.0))


def test_kill9_during_bank_writes_on_s3_leaves_no_half_set(s3_server):
    """A trial on the emulated S3; a killed writer may leave the commit lock's object, which
    the re-run takes over (its holder's pid is gone from this host)."""
    _kill_writer_trials(s3_server.uri(), trials=1, count=6, window=(2.0, 6.0))


def _kill_writer_trials(uri: str, trials: int, count: int, window: tuple[float, float]) -> None:
    open_bank(uri)
    rng = random.Random(0)
    for trial in range(trials):
        first = 100 * trial
        _kill_at_random([sys.executable, WRITER, uri, str(first), str(count)], window, rng)
        _check_no_half_set(uri)
        bank = open_bank(uri)
        # the re-run completes; sets written before the kill are kept, not rewritten
        done = {k for k in bank.read("sets").column("class_key").to_pylist()}
        wrote = [write_class(bank, i) for i in range(first, first + count)]
        assert sum(wrote) == count - len([k for k in done if int(k.split()[1]) >= first])
        _check_no_half_set(uri)
        table = prototype_table_name(EXTRACTOR)
        got, _ = bank.load_prototypes(
            table, EXTRACTOR, [(f"class {i}", GENERATOR, 0) for i in range(first, first + count)]
        )
        assert got.shape[0] == sum(n_rows(i) for i in range(first, first + count))
        want = np.concatenate([vectors(i) for i in range(first, first + count)])
        np.testing.assert_array_equal(got, want.astype(np.float16))


ADD_SCRIPT = """
import sys
import protodb
from protodb.extractors.factory import default_extractor_config, get_extractor
from protodb.synthesis.generate import GENERATORS, default_generator_config
db = protodb.connect(sys.argv[1], profile="tiny", device="cpu")
db.bank
get_extractor(default_extractor_config("tiny", "dinov2"), "cpu")  # build models before 'ready'
print("ready", flush=True)
db.add([sys.argv[2]], n=int(sys.argv[3]), progress=False)
print("done", flush=True)
"""


@pytest.mark.slow
def test_kill9_during_add_20_trials(tmp_path):
    """20 real `add` runs (tiny models) killed at random points; after each, the bank opens,
    shows no half set, and the re-run regenerates no stored support image."""
    uri = str(tmp_path / "bank")
    db = protodb.connect(uri, profile="tiny", device="cpu")
    n = 3
    t = time.perf_counter()
    db.add(["warm up"], n=n, progress=False)  # builds the models here; times one add
    one_add = time.perf_counter() - t
    rng = random.Random(1)
    for trial in range(20):
        name = f"crash class {trial}"
        _kill_at_random(
            [sys.executable, "-c", ADD_SCRIPT, uri, name, str(n)],
            (0.0, 1.5 * one_add),
            rng,
        )
        _check_no_half_set(uri)
        fresh = protodb.connect(uri, profile="tiny", device="cpu")
        key = name.casefold()
        stored = {
            r["index"] for r in fresh.bank.read("supports", f"class_key = '{key}'").to_pylist()
        }
        (res,) = fresh.add([name], n=n, progress=False)
        if res.status == "exists":  # the kill came after the completion record
            continue
        assert res.reused == len(stored)
        assert res.generated == n - len(stored)
        _check_no_half_set(uri)
        rows = fresh.bank.read("supports", f"class_key = '{key}'")
        assert sorted(rows.column("index").to_pylist()) == list(range(n))  # none twice
