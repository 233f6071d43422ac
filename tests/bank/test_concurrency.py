"""Several processes writing one bank at once lose nothing and duplicate nothing."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bank_writer import EXTRACTOR, GENERATOR, n_rows, vectors

from protodb.bank.schema import prototype_table_name
from protodb.bank.store import open_bank

WRITER = str(Path(__file__).resolve().parents[1] / "bank_writer.py")


def _run_writers(uri: str, ranges: list[tuple[int, int]], timeout: float = 600) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, WRITER, uri, str(first), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first, count in ranges
    ]
    for p in procs:
        out, errs = p.communicate(timeout=timeout)
        assert p.returncode == 0, errs


def _check_exactly_once(uri: str, expected: set[int]) -> None:
    bank = open_bank(uri, create=False)
    sets = bank.read("sets")
    keys = collections.Counter(sets.column("class_key").to_pylist())
    assert set(keys) == {f"class {i}" for i in expected}
    assert max(keys.values()) == 1, [k for k, v in keys.items() if v > 1]
    supports = bank.read("supports")
    skeys = collections.Counter(
        zip(
            supports.column("class_key").to_pylist(),
            supports.column("index").to_pylist(),
            strict=True,
        )
    )
    assert len(skeys) == 2 * len(expected) and max(skeys.values()) == 1
    classes = collections.Counter(bank.classes().column("class_key").to_pylist())
    assert len(classes) == len(expected) and max(classes.values()) == 1
    # every set loads whole (fast path and filter agree) and with its own vectors
    table = prototype_table_name(EXTRACTOR)
    order = sorted(expected)
    sets = [(f"class {i}", GENERATOR, 0) for i in order]
    vecs, meta = bank.load_prototypes(table, EXTRACTOR, sets)
    assert vecs.shape[0] == sum(n_rows(i) for i in order)
    want = np.concatenate([vectors(i) for i in order]).astype(np.float16)
    np.testing.assert_array_equal(vecs, want)
    # one log row per set written, versions 1..N without gaps or repeats
    versions = [e.version for e in bank.history()]
    assert versions == list(range(1, len(expected) + 1))


def test_four_processes_25_adds_each_same_and_different_keys(tmp_path):
    """4 processes x 25 concurrent adds over overlapping class ranges: every set exactly once."""
    uri = str(tmp_path / "bank")
    ranges = [(0, 25), (15, 25), (30, 25), (0, 25)]  # overlaps, and one range twice
    _run_writers(uri, ranges)
    _check_exactly_once(uri, set(range(0, 55)))


def test_two_writers_on_s3_same_and_different_keys(s3_server):
    """2 processes x 5 concurrent adds on the emulated S3 (moto), overlapping in 4 classes:
    the S3 commit lock (a lease object written with If-None-Match) keeps every key once."""
    uri = s3_server.uri()
    _run_writers(uri, [(0, 5), (1, 5)])
    _check_exactly_once(uri, set(range(0, 6)))
    assert "_protodb_commit.lock" not in s3_server.keys(uri)  # released


@pytest.mark.slow
def test_four_processes_25_real_adds_each(tmp_path):
    """The same with the real add pipeline (tiny models): 4 processes x 25 add_class calls."""
    uri = str(tmp_path / "bank")
    code = (
        "import sys, protodb\n"
        "db = protodb.connect(sys.argv[1], profile='tiny', device='cpu')\n"
        "names = [f'thing {i}' for i in range(int(sys.argv[2]), int(sys.argv[2]) + 25)]\n"
        "for name in names:\n"
        "    db.add([name], n=1, progress=False)\n"
    )
    starts = [0, 10, 20, 10]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri, str(s)], stderr=subprocess.PIPE, text=True
        )
        for s in starts
    ]
    for p in procs:
        _, errs = p.communicate(timeout=1800)
        assert p.returncode == 0, errs
    bank = open_bank(uri, create=False)
    keys = collections.Counter(bank.read("sets").column("class_key").to_pylist())
    assert set(keys) == {f"thing {i}" for i in range(45)}
    assert max(keys.values()) == 1
    supports = bank.read("supports")
    skeys = collections.Counter(supports.column("class_key").to_pylist())
    assert max(skeys.values()) == 1  # n=1: one support image per class, never duplicated
    for s in bank.read("sets").to_pylist():
        vecs, _ = bank.load_prototypes(
            s["prototype_table"], s["extractor_id"], [(s["class_key"], s["generator_id"], 0)]
        )
        assert vecs.shape[0] == s["n_fg"] + s["n_bg"]
