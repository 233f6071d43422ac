"""Import and merge end to end, rollback, schema-1 sources (protodb.bank.share.merge)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, bank_state, make_image
from PIL import Image
from typer.testing import CliRunner

import protodb
from protodb.bank.schema import prototype_table_name
from protodb.bank.share.manifest import ImportRefused
from protodb.bank.store import open_bank
from protodb.cli.app import app
from protodb.errors import ProtodbError


def _segment_pngs(bank: Path, image: Path, out: Path, vocab: str = "v1") -> dict[str, bytes]:
    db = protodb.connect(bank, profile="tiny", device="cpu")
    db.segment([image], vocab=vocab, out=out, progress=False)
    # every output file, with the output folder's own path (in the JSON summary) neutralised
    return {
        p.name: p.read_bytes().replace(str(out).encode(), b"OUT") for p in sorted(out.iterdir())
    }


@pytest.mark.parametrize("form", ["v1.protodb", "v1_dir"])
def test_export_import_segment_byte_identical(exported, tiny_bank, tmp_path, form):
    """export -> import into an empty bank elsewhere -> segment: byte-identical label PNGs."""
    image = tmp_path / "scene.png"
    Image.fromarray(make_image(48, 64, seed=3)).save(image)
    before = _segment_pngs(tiny_bank.path, image, tmp_path / "a")
    target = tmp_path / "elsewhere" / "bank"
    db = protodb.connect(target, profile="tiny", device="cpu")
    res = db.import_(exported[0] / form)
    assert res.vocabs == ["v1"] and res.sets == len(CLASSES) and res.supports == 8
    after = _segment_pngs(target, image, tmp_path / "b")
    assert before.keys() == after.keys() and before == after
    # importing again changes nothing; --as gives the vocabulary a second name
    again = db.import_(exported[0] / form)
    assert (again.sets, again.vocabs) == (0, [])
    renamed = db.import_(exported[0] / form, name="team_v1")
    assert renamed.vocabs == ["team_v1"] and renamed.skipped == len(CLASSES)
    renamed_out = _segment_pngs(target, image, tmp_path / "c", "team_v1")
    summary = renamed_out.pop("scene.json")  # names its vocabulary; every other file is equal
    assert b'"vocab": "team_v1"' in summary
    assert renamed_out == {k: v for k, v in before.items() if k != "scene.json"}


def test_export_import_merge_on_s3_segment_byte_identical(exported, tiny_bank, tmp_path, s3_server):
    """A bank on the emulated S3 segments as its local twin; its export to an s3:// URI and to
    a file, imported into another S3 bank, and a merge from S3 into a local bank and from a
    local bank into S3, all segment byte-identically."""
    image = tmp_path / "scene.png"
    Image.fromarray(make_image(48, 64, seed=3)).save(image)
    before = _segment_pngs(tiny_bank.path, image, tmp_path / "a")
    source = s3_server.uri("source")
    s3_server.upload(tiny_bank.path, source)
    assert _segment_pngs(source, image, tmp_path / "b") == before
    src = protodb.connect(source, profile="tiny", device="cpu")
    exported_uri = s3_server.uri("export")
    res = src.export(exported_uri, vocab="v1")
    assert res.sets == len(CLASSES)
    with pytest.raises(ProtodbError, match="holds a bank"):
        src.export(exported_uri, vocab="v1")
    src.export(tmp_path / "v1.protodb", vocab="v1")
    target = s3_server.uri("target")
    db = protodb.connect(target, profile="tiny", device="cpu")
    assert db.import_(exported_uri).vocabs == ["v1"]
    assert db.import_(tmp_path / "v1.protodb", name="team_v1").skipped == len(CLASSES)
    assert _segment_pngs(target, image, tmp_path / "c") == before
    local = tmp_path / "merged"
    assert protodb.connect(local, profile="tiny", device="cpu").merge(source).vocabs == ["v1"]
    assert _segment_pngs(local, image, tmp_path / "d") == before
    into = s3_server.uri("into")
    assert protodb.connect(into, profile="tiny", device="cpu").merge(local).vocabs == ["v1"]
    assert _segment_pngs(into, image, tmp_path / "e") == before
    assert "_protodb_commit.lock" not in s3_server.keys(into)


def test_merge_other_bank(tiny_bank, tmp_path):
    target = tmp_path / "target"
    db = protodb.connect(target, profile="tiny", device="cpu")
    res = db.merge(tiny_bank.path)
    assert res.sets == len(CLASSES) and res.vocabs == ["v1"]
    src = open_bank(str(tiny_bank.path), create=False)
    table = prototype_table_name(src.read("sets").to_pylist()[0]["extractor_id"])
    assert db.bank.read(table).num_rows == src.read(table).num_rows
    again = db.merge(tiny_bank.path)
    assert (again.sets, again.skipped, again.vocabs) == (0, len(CLASSES), [])
    assert [e.op for e in db.history()][-2:] == ["merge", "merge"]
    assert db.bank.read("sets").num_rows == len(CLASSES)


def test_merge_refuses_a_non_bank(tmp_path):
    (tmp_path / "empty").mkdir()
    target = tmp_path / "target"
    open_bank(str(target))
    before = bank_state(target)
    with pytest.raises(ImportRefused, match="not a protodb bank"):
        protodb.connect(target).merge(tmp_path / "empty")
    assert bank_state(target) == before


def test_cli_export_import(tiny_bank, tmp_path):
    runner = CliRunner()
    out = tmp_path / "v1.protodb"
    r = runner.invoke(app, ["--bank", str(tiny_bank.path), "export", "--vocab", "v1", str(out)])
    assert r.exit_code == 0, r.output
    assert "exported 2 prototype set(s)" in r.output
    target = tmp_path / "t"
    r = runner.invoke(app, ["--bank", str(target), "import", str(out), "--as", "mine"])
    assert r.exit_code == 0, r.output
    assert "vocabularies: mine" in r.output
    bad = tmp_path / "bad.protodb"
    bad.write_bytes(b"not a tar at all")
    r = runner.invoke(app, ["--bank", str(target), "import", str(bad)])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output


def test_import_failing_midway_is_rolled_back_with_its_tags(exported, tmp_path, monkeypatch):
    """A failure after the vocabulary was pinned (disk full, kill of a thread...) puts every
    table back and removes the tags the import made, so the same import can run again."""
    import protodb.bank.vocab

    target = tmp_path / "target"
    db = protodb.connect(target, profile="tiny", device="cpu")
    bank = db.bank
    before = {name: bank.read(name) for name in bank.table_names() if name != "log"}
    real = protodb.bank.vocab._pin_vocab

    def pin_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise OSError("No space left on device")

    monkeypatch.setattr(protodb.bank.vocab, "_pin_vocab", pin_then_fail)
    with pytest.raises(OSError, match="No space"):
        db.import_(exported[0] / "v1.protodb")
    for name in bank.table_names():
        assert bank.tags(name) == {}, name
        if name in before:
            assert bank.read(name).equals(before[name]), name
        elif name != "log":
            assert bank.read(name).num_rows == 0, name
    monkeypatch.setattr(protodb.bank.vocab, "_pin_vocab", real)
    assert db.import_(exported[0] / "v1.protodb").vocabs == ["v1"]


def test_merge_of_a_schema_1_bank_leaves_that_bank_untouched(tmp_path):
    """Merging reads another bank; an older one is migrated in a copy, never in place."""
    import lancedb
    from bank_writer import EXTRACTOR, GENERATOR, vectors, write_class

    other = tmp_path / "old"
    bank = open_bank(str(other))
    write_class(bank, 1)
    write_class(bank, 2)
    table = prototype_table_name(EXTRACTOR)
    bank.table("sets").drop_columns(["write_id", "row_start", "row_count"])
    bank.table("cells").drop_columns(["write_id"])
    bank.table(table).drop_columns(["write_id"])
    meta = bank.table("meta")
    meta.update(where="key = 'schema_version'", values={"value": "1"})
    files = {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()}

    target = tmp_path / "target"
    res = protodb.connect(target).merge(other)
    assert res.sets == 2  # legacy rows have no write ids: each set's rows found by its key
    merged = open_bank(str(target))
    for i in (1, 2):
        got, _ = merged.load_prototypes(table, EXTRACTOR, [(f"class {i}", GENERATOR, 0)])
        np.testing.assert_array_equal(got, vectors(i).astype(np.float16))
    assert {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()} == files
    rows = lancedb.connect(str(other)).open_table("meta").to_arrow().to_pylist()
    assert {r["key"]: r["value"] for r in rows}["schema_version"] == "1"
