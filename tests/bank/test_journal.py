"""All-or-nothing operations (protodb.bank.journal): a failure rolls back, a kill -9 at every
commit boundary of ``import`` and ``merge`` leaves a bank that reads exactly as before or exactly
as after from the next open on, and an unfinished operation is never half visible."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import protodb
from protodb.bank.commit import FAULT_ENV
from protodb.bank.journal import JOURNAL_KEY
from protodb.bank.schema import table_schema
from protodb.bank.store import open_bank
from protodb.errors import BankError

CLI = "from protodb.cli.app import main; main()"


def content(path: Path) -> dict:
    """What a reader of the bank sees: every table's rows (sorted JSON lines, hashed; times of
    creation and write ids left out), its tags, the history's operations; is a journal left."""
    bank = open_bank(str(path), create=False)
    out = {}
    for name in bank.table_names():
        if name == "meta":
            continue
        table = bank.read(name)
        # a clock and a fresh uuid per write: not content, they differ run to run
        table = table.drop_columns(
            [c for c in ("created_at", "write_id") if c in table.schema.names]
        )
        rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())
        out[name] = (hashlib.sha256("\n".join(rows).encode()).hexdigest(), bank.tags(name))
    out["ops"] = [e.op for e in bank.history()]
    out["journal"] = JOURNAL_KEY in bank.meta()
    return out


def _cli(bank: Path, *args: str, kill_after: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(FAULT_ENV, None)
    if kill_after is not None:
        env[FAULT_ENV] = str(kill_after)
    return subprocess.run(
        [sys.executable, "-c", CLI, "--bank", str(bank), "--profile", "tiny", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_failing_operation_rolls_back_every_table(bank_copy_uri):
    before = content(bank_copy_uri)
    bank = open_bank(str(bank_copy_uri))
    with pytest.raises(RuntimeError, match="boom"), bank.commit_lock(), bank.atomic("test"):
        bank.upsert_class("blue_cup", "blue cup")
        bank.ensure_prototype_table("made-up-extractor", 4, "float32")
        bank.tag("classes", "vocab.zz", int(bank.table("classes").version))
        raise RuntimeError("boom")
    assert content(bank_copy_uri) == before
    assert "prototypes_made-up-extractor" not in open_bank(str(bank_copy_uri)).table_names()


def _leave_journal(path: Path, op: str, finish: bool) -> None:
    """What a process killed inside ``atomic`` leaves: a journal row, some writes, and (when it
    got that far) its history row."""
    bank = open_bank(str(path))
    versions = bank.versions()
    journal = {
        "op": op,
        "versions": versions,
        "tags": {t: bank.tags(t) for t in versions if t != "meta"},
        "log_version": len(bank.history()) + 1,
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    row = {"key": [JOURNAL_KEY], "value": [json.dumps(journal)]}
    bank.append("meta", pa.table(row, schema=table_schema("meta")))
    bank.upsert_class("blue_cup", "blue cup")
    if finish:
        bank.log(op, {})


def test_the_next_open_rolls_back_an_unfinished_operation(bank_copy_uri):
    before = content(bank_copy_uri)
    _leave_journal(bank_copy_uri, "import", finish=False)
    bank = open_bank(str(bank_copy_uri))
    assert bank.recovered == "rolled back an interrupted import"
    assert content(bank_copy_uri) == before


def test_the_next_open_keeps_a_finished_operation(bank_copy_uri):
    _leave_journal(bank_copy_uri, "import", finish=True)
    bank = open_bank(str(bank_copy_uri))
    assert bank.recovered == "completed import"
    after = content(bank_copy_uri)
    assert after["ops"][-1] == "import" and not after["journal"]
    assert "blue_cup" in bank.read("classes").column("class_key").to_pylist()


def test_an_unfinished_operation_is_invisible_while_its_writer_lives(bank_copy):
    """A live writer holds the commit lock: a reader opened meanwhile reads as before, and a
    writer waits for it and then recovers."""
    import fcntl

    before = content(bank_copy)
    _leave_journal(bank_copy, "import", finish=False)
    fd = os.open(bank_copy / "_protodb_commit.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # "the importer is alive"
    try:
        reader = open_bank(str(bank_copy))
        assert reader.recovered is None
        assert "blue_cup" not in reader.read("classes").column("class_key").to_pylist()
    finally:
        os.close(fd)  # "the importer died"
    reader.upsert_class("green_cup", "green cup")  # a write recovers first
    keys = set(open_bank(str(bank_copy)).read("classes").column("class_key").to_pylist())
    assert "green_cup" in keys and "blue_cup" not in keys
    assert content(bank_copy)["ops"] == before["ops"]


def test_an_unfinished_operation_on_s3_is_invisible_while_its_writer_lives(s3_server, tiny_bank):
    """The same on S3, where the live writer holds the commit lock's lease object."""
    from protodb.bank.objlock import S3Lock

    uri = s3_server.uri()
    s3_server.upload(tiny_bank.path, uri)
    before = content(uri)
    _leave_journal(uri, "import", finish=False)
    lock = S3Lock(uri)
    lock.acquire()  # "the importer is alive"
    try:
        reader = open_bank(uri)
        assert reader.recovered is None
        assert "blue_cup" not in reader.read("classes").column("class_key").to_pylist()
    finally:
        lock.release()  # "the importer is done (or its lease ran out)"
    reader.upsert_class("green_cup", "green cup")  # a write recovers first
    keys = set(open_bank(uri).read("classes").column("class_key").to_pylist())
    assert "green_cup" in keys and "blue_cup" not in keys
    assert content(uri)["ops"] == before["ops"]


def _kill_trials(target, args: list[str], every: int, s3=None) -> tuple[int, int]:
    """Run ``args`` killed after its 1st, 1+every-th, ... commit, each time on a fresh copy of
    ``target``, until a run is not killed, and then after each of the last ``every`` commits;
    every trial must read as before or after. Returns (trials, trials that read as after).
    ``s3``: the S3Server when ``target`` is an s3:// bank."""
    if s3 is None:
        fresh = target.parent / "fresh"
        shutil.copytree(target, fresh)
    else:
        fresh = s3.uri("fresh")
        s3.copy(target, fresh)
    before = content(target)
    done = _cli(target, *args)
    assert done.returncode == 0, done.stderr
    after = content(target)
    assert after != before and not after["journal"]
    trials = afters = 0

    def trial(k: int) -> bool:
        nonlocal trials, afters
        if s3 is None:
            shutil.rmtree(target)
            shutil.copytree(fresh, target)
        else:
            s3.delete(target)
            s3.copy(fresh, target)
        run = _cli(target, *args, kill_after=k)
        if run.returncode == 0:
            return False
        assert run.returncode == -9, run.stderr
        got = content(target)  # opening recovers
        assert got in (before, after), f"killed after commit {k}: half state"
        trials += 1
        afters += got == after
        return True

    k = 1
    while trial(k):
        k += every
    # the last commits (the history row, the journal's removal) are always among the trials
    for last in range(max(k - every + 1, 1), k):
        trial(last)
    return trials, afters


def _sources(tiny_bank, tmp_path: Path) -> tuple[Path, Path]:
    """(an export of the session bank's v1, a target bank holding one class of its own)."""
    src = tmp_path / "v1.protodb"
    protodb.connect(tiny_bank.path, profile="tiny", device="cpu").export(src, vocab="v1")
    target = tmp_path / "target" / "bank"
    db = protodb.connect(target, profile="tiny", device="cpu")
    db.add(["blue cup"], n=2, extractors=("dinov2",), progress=False)
    return src, target


@pytest.mark.parametrize("op", ["import", "merge"])
def test_kill9_at_commit_boundaries_reads_before_or_after(tiny_bank, tmp_path, op):
    """Every fifth commit boundary and the last few (all of them in the slow run below)."""
    src, target = _sources(tiny_bank, tmp_path)
    args = ["import", str(src)] if op == "import" else ["merge", str(tiny_bank.path)]
    trials, afters = _kill_trials(target, args, every=5)
    assert trials >= 5 and afters >= 1


def test_kill9_of_an_import_into_an_s3_bank_then_a_rerun(tiny_bank, tmp_path, s3_server):
    """On the emulated S3: an import killed after its 3rd commit leaves its lock object and
    journal; the next open takes over the dead process's lock and rolls back, so the bank
    reads as before; a re-run completes."""
    src, local_target = _sources(tiny_bank, tmp_path)
    target = s3_server.uri()
    s3_server.upload(local_target, target)
    before = content(target)
    run = _cli(target, "import", str(src), kill_after=3)
    assert run.returncode == -9, run.stderr
    assert "_protodb_commit.lock" in s3_server.keys(target)
    assert content(target) == before
    run = _cli(target, "import", str(src))
    assert run.returncode == 0, run.stderr
    after = content(target)
    assert after != before and after["ops"][-1] == "import" and not after["journal"]


@pytest.mark.slow
def test_kill9_of_an_import_into_an_s3_bank_reads_before_or_after(tiny_bank, tmp_path, s3_server):
    """The same on the emulated S3: a killed import leaves its lock object and journal; the
    next open takes over the dead process's lock and recovers. Every eighth boundary and the
    last few."""
    src, local_target = _sources(tiny_bank, tmp_path)
    target = s3_server.uri()
    s3_server.upload(local_target, target)
    trials, afters = _kill_trials(target, ["import", str(src)], every=8, s3=s3_server)
    assert trials >= 3 and afters >= 1


@pytest.mark.slow
@pytest.mark.parametrize("op", ["import", "merge"])
def test_kill9_at_every_commit_boundary(tiny_bank, tmp_path, op):
    src, target = _sources(tiny_bank, tmp_path)
    args = ["import", str(src)] if op == "import" else ["merge", str(tiny_bank.path)]
    trials, afters = _kill_trials(target, args, every=1)
    assert trials >= 15 and afters >= 1


def test_a_read_only_bank_reads_and_refuses_writes_in_one_line(bank_copy):
    """A lock file this process cannot open for writing (as on a read-only mount; tests run as
    root, so permissions alone cannot show it): reads work, a write is one line and a non-zero
    exit."""
    for lock in ("_protodb_commit.lock", "_protodb_writers.lock"):
        (bank_copy / lock).unlink(missing_ok=True)
        (bank_copy / lock).mkdir()
    before = content(bank_copy)
    assert _cli(bank_copy, "ls").returncode == 0
    run = _cli(bank_copy, "vocab", "create", "v2", "red apple")
    assert run.returncode == BankError.exit_code
    assert run.stderr.strip().count("\n") == 0 and "read-only" in run.stderr
    assert content(bank_copy) == before


def test_the_quick_reader_leaves_a_journal_to_the_bank(bank_copy):
    """Listings read through pylance alone (protodb.bank.readonly) except when a journal is
    there: then the Bank opens, recovers, and the listing shows the bank as before."""
    from protodb.bank.readonly import open_reader

    assert open_reader(str(bank_copy)) is not None
    _leave_journal(bank_copy, "import", finish=False)
    assert open_reader(str(bank_copy)) is None
    run = _cli(bank_copy, "ls")
    assert run.returncode == 0 and "blue cup" not in run.stdout
    assert open_reader(str(bank_copy)) is not None  # recovered by that ls


# ------------------------------------------------------------------ add


def _sets_content(path: Path) -> dict:
    """:func:`content` without the support images and masks, which ``add`` writes keyed before
    its sets and a killed ``add`` may leave (complete, reused by the next one)."""
    out = content(path)
    out.pop("supports")
    out.pop("masks")
    return out


def _add_commits(target: Path, args: list[str]) -> tuple[dict, dict, int]:
    """(content before, content after, commits) of an ``add`` run to completion on a copy."""
    done = target.parent / "done"
    shutil.copytree(target, done)
    before = open_bank(str(done), create=False).versions()
    run = _cli(done, *args)
    assert run.returncode == 0, run.stderr
    after = open_bank(str(done), create=False).versions()
    commits = sum(v - before.get(t, 0) for t, v in after.items())
    return _sets_content(target), _sets_content(done), commits


def _add_kill_trials(tmp_path: Path, points) -> int:
    """Kill ``add`` of a new class after each commit in ``points(commits)``, each on a fresh
    copy of a bank holding another class: the class row, the set and its history row land
    together or not at all. Returns the number of trials that read as after."""
    target = tmp_path / "target" / "bank"
    db = protodb.connect(target, profile="tiny", device="cpu")
    db.add(["blue cup"], n=1, extractors=("dinov2",), progress=False)
    args = ["add", "sky", "--n", "1", "--steps", "2", "--extractor", "dinov2", "-q"]
    before, after, commits = _add_commits(target, args)
    assert after != before and after["ops"] == [*before["ops"], "add"]
    fresh = tmp_path / "fresh"
    shutil.copytree(target, fresh)
    afters = 0
    for k in points(commits):
        shutil.rmtree(target)
        shutil.copytree(fresh, target)
        run = _cli(target, *args, kill_after=k)
        assert run.returncode == -9, (k, commits, run.stderr)
        got = _sets_content(target)  # opening recovers
        assert got in (before, after), f"add killed after commit {k} of {commits}: half state"
        afters += got == after
        if got == before:
            assert "sky" not in content(target)["ops"]
            classes = open_bank(str(target), create=False).read("classes")
            assert "sky" not in classes.column("class_key").to_pylist()  # no class without a set
    return afters


def test_kill9_during_add_leaves_the_class_with_its_set_or_neither(tmp_path):
    """Killed after the set's prototype rows (its class row is in): before; after its history
    row: after. Every commit boundary in the slow test (about 10 min on 2 busy cores; this one
    makes three ``add`` processes)."""
    afters = _add_kill_trials(tmp_path, lambda c: [c - 4, c - 1])
    assert afters == 1


@pytest.mark.slow
def test_kill9_during_add_at_every_commit_boundary(tmp_path):
    afters = _add_kill_trials(tmp_path, lambda c: range(1, c))
    assert afters >= 1
