"""gc (orphans, compaction, old versions, pins, writers) and restore / --at."""

from __future__ import annotations

import pyarrow as pa
import pytest
from bank_writer import write_class
from conftest import make_image
from typer.testing import CliRunner

import protodb
from protodb.bank.maintenance import gc, restore
from protodb.bank.store import open_bank
from protodb.cli.app import app
from protodb.errors import BankError, NotFoundError


def _labels(path) -> bytes:
    db = protodb.connect(path, profile="tiny", device="cpu")
    return db.vocab("v1").segment(make_image(40, 56, seed=5)).labels.tobytes()


def _add_orphans(bank) -> str:
    """Rows of a set whose completion record never landed (what a kill -9 leaves)."""
    s = bank.read("sets").to_pylist()[0]
    table = s["prototype_table"]
    rows = bank.read(table, f"write_id = '{s['write_id']}'")
    rows = rows.set_column(
        rows.schema.get_field_index("write_id"), "write_id", pa.array(["dead"] * rows.num_rows)
    )
    bank.append(table, rows)
    cells = bank.read("cells", f"write_id = '{s['write_id']}'")
    cells = cells.set_column(
        cells.schema.get_field_index("write_id"), "write_id", pa.array(["dead"] * cells.num_rows)
    )
    bank.append("cells", cells)
    return table


def test_gc_removes_orphans_compacts_and_keeps_pinned(bank_copy_uri):
    before = _labels(bank_copy_uri)
    bank = open_bank(str(bank_copy_uri))
    table = _add_orphans(bank)
    n_rows = bank.read(table).num_rows
    pinned = bank.tags(table)["vocab.v1"]
    result = gc(bank)
    live = sum(s["n_fg"] + s["n_bg"] for s in bank.read("sets").to_pylist())
    assert result.orphans[table] == n_rows - live and result.orphans["cells"] > 0
    assert table in result.compacted and result.removed_versions > 0
    assert bank.read(table).num_rows == live
    assert bank.read(table, "write_id = 'dead'").num_rows == 0
    # clustered by class, and each set's recorded range is right at the latest version
    keys = bank.read(table).column("class_key").to_pylist()
    assert keys == sorted(keys)
    for s in bank.read("sets").to_pylist():
        rows = bank.dataset(table).take(list(range(s["row_start"], s["row_start"] + 3)))
        assert set(rows.column("write_id").to_pylist()) == {s["write_id"]}
    # only the latest and the pinned versions are left; the vocabulary reads the same
    versions = {v["version"] for v in bank.table(table).list_versions()}
    assert versions == {pinned, bank.table(table).version}
    assert "vocab.v1" in result.kept_tags[table]
    assert _labels(bank_copy_uri) == before
    assert bank.history()[-1].op == "gc"


def test_gc_refuses_while_a_writer_is_active(bank_copy):
    writer = open_bank(str(bank_copy))
    with writer.writer(), pytest.raises(BankError, match="another process is writing"):
        gc(open_bank(str(bank_copy)))
    gc(open_bank(str(bank_copy)))  # fine once the writer is done


def test_gc_on_s3_waits_for_the_commit_lock(s3_server, tiny_bank, monkeypatch):
    """On S3 gc holds the commit lock throughout (every commit is made under it): while a
    writer holds it gc waits, up to PROTODB_S3_LOCK_WAIT_S, then says so in one line."""
    from protodb.bank.objlock import WAIT_ENV

    uri = s3_server.uri()
    s3_server.upload(tiny_bank.path, uri)
    writer = open_bank(uri)
    monkeypatch.setenv(WAIT_ENV, "0.5")
    with writer.commit_lock(), pytest.raises(BankError, match="held its commit lock"):
        gc(open_bank(uri))
    assert gc(open_bank(uri)).compacted  # fine once the writer is done


def test_restore_makes_an_old_version_latest(bank_copy_uri):
    bank = open_bank(str(bank_copy_uri))
    old = bank.history()
    write_class(bank, 7)  # a new class and a new prototype table
    assert bank.read("sets").num_rows == 3
    entry = restore(bank, len(old))
    assert entry.op == "restore" and entry.version == len(old) + 2
    assert sorted(bank.read("sets").column("class_key").to_pylist()) == ["grass", "red apple"]
    assert bank.read("prototypes__ext_1").num_rows == 0  # made after that version: emptied
    assert [e.op for e in bank.history()][-2:] == ["add", "restore"]
    # restore of a restore: history is kept, so the newer state comes back too
    restore(bank, len(old) + 1)
    assert bank.read("sets").num_rows == 3
    with pytest.raises(NotFoundError, match="bank version 99 does not exist"):
        restore(bank, 99)


def test_restore_of_a_version_gc_removed_is_refused(bank_copy_uri):
    bank = open_bank(str(bank_copy_uri))
    gc(bank)
    with pytest.raises(NotFoundError, match="removed by gc"):
        restore(bank, 1)


def test_read_at_a_version(bank_copy_uri):
    db = protodb.connect(bank_copy_uri, profile="tiny", device="cpu", at=1)
    assert [c.name for c in db.classes()] == ["red apple"]
    assert db.vocabs() == []
    with pytest.raises(BankError, match="read-only at version 1"):
        db.bank.upsert_class("sky", "sky")
    later = protodb.connect(bank_copy_uri, profile="tiny", device="cpu", at=3)
    assert [v.name for v in later.vocabs()] == ["v1"]
    with pytest.raises(NotFoundError, match="bank version 9 does not exist"):
        protodb.connect(bank_copy_uri, at=9).classes()


def test_cli_restore_gc_at(bank_copy_uri):
    runner = CliRunner()
    base = ["--bank", str(bank_copy_uri)]
    r = runner.invoke(app, [*base, "--at", "1", "ls"])
    assert r.exit_code == 0 and "red apple" in r.output and "grass" not in r.output
    r = runner.invoke(app, [*base, "restore", "1"])
    assert r.exit_code == 0 and "restored bank version 1 as version 4" in r.output
    r = runner.invoke(app, [*base, "ls"])
    assert "grass" not in r.output
    r = runner.invoke(app, [*base, "gc"])
    assert r.exit_code == 0 and "old versions" in r.output
    r = runner.invoke(app, [*base, "restore", "42"])
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, [*base, "history"])
    assert [ln.split("\t")[2] for ln in r.output.strip().splitlines()][-2:] == ["restore", "gc"]


def test_gc_streams_a_large_rewrite_in_batches_and_is_idempotent(tmp_path, monkeypatch):
    """gc plans from the key columns and streams rows in bounded batches (here of about 1 KiB,
    so many batches): the rewrite keeps every live row exactly, clusters it, records ranges
    that the fast load reads, and a second gc finds nothing to do."""
    import numpy as np
    from bank_writer import EXTRACTOR, GENERATOR, vectors

    import protodb.bank.maintenance as maintenance
    from protodb.bank.schema import prototype_table_name

    monkeypatch.setattr(maintenance, "REWRITE_BATCH_BYTES", 1024)
    bank = open_bank(str(tmp_path / "bank"))
    for i in (4, 1, 3, 0, 2):  # appended out of class order
        write_class(bank, i)
    table = _add_orphans(bank)
    assert table == prototype_table_name(EXTRACTOR)
    before = bank.read(table, "write_id != 'dead'")
    result = gc(bank)
    assert table in result.compacted and result.orphans[table] > 0
    after = bank.read(table)
    assert after.num_rows == before.num_rows
    assert after.column("class_key").to_pylist() == sorted(before.column("class_key").to_pylist())
    assert after.sort_by("write_id").equals(before.sort_by("write_id").cast(after.schema))
    assert len(bank.dataset(table).get_fragments()) == 1
    fresh = open_bank(bank.uri)
    sets = [(f"class {i}", GENERATOR, 0) for i in (2, 4, 0)]
    got, _ = fresh.load_prototypes(table, EXTRACTOR, sets)
    want = np.concatenate([vectors(i) for i in (2, 4, 0)]).astype(np.float16)
    np.testing.assert_array_equal(got, want)
    assert fresh._vector_reader is not None and any(fresh._vector_reader._pages.values())
    again = gc(bank)
    assert (again.compacted, again.orphans) == ([], {})
