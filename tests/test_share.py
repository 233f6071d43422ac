"""export / import / merge, including hostile imports that must leave the target unchanged."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import CLASSES, make_image
from PIL import Image
from typer.testing import CliRunner

import protodb
from protodb.bank.schema import prototype_table_name, vectors_to_arrow
from protodb.bank.share.manifest import ImportRefused, table_sha256
from protodb.bank.store import open_bank
from protodb.cli.app import app


@pytest.fixture(scope="module")
def exported(tiny_bank, tmp_path_factory):
    """The session bank's vocabulary v1 exported to one file and to a directory."""
    out = tmp_path_factory.mktemp("export")
    db = protodb.connect(tiny_bank.path, profile="tiny", device="cpu")
    file_res = db.export(out / "v1.protodb", vocab="v1")
    dir_res = db.export(out / "v1_dir", vocab="v1")
    return out, file_res, dir_res


def _state(path: Path) -> dict:
    """Everything observable about a bank: table versions and the files on disk."""
    bank = open_bank(str(path), create=False)
    files = sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and "lock" not in p.name
    )
    return {"versions": bank.versions(), "files": files}


def _segment_pngs(bank: Path, image: Path, out: Path, vocab: str = "v1") -> dict[str, bytes]:
    db = protodb.connect(bank, profile="tiny", device="cpu")
    db.segment([image], vocab=vocab, out=out, progress=False)
    # every output file, with the output folder's own path (in the JSON summary) neutralised
    return {
        p.name: p.read_bytes().replace(str(out).encode(), b"OUT") for p in sorted(out.iterdir())
    }


def _copy_export(exported, tmp_path) -> Path:
    src = exported[0] / "v1_dir"
    dst = tmp_path / "export"
    shutil.copytree(src, dst)
    return dst


def _rehash(export_dir: Path) -> None:
    """Recompute the manifest's row counts and hashes, as a careful attacker would, so that
    the checks behind the hash are what refuses the import."""
    bank = open_bank(str(export_dir), create=False)
    manifest = json.loads(bank.meta()["manifest"])
    for name in manifest["tables"]:
        t = bank.read(name)
        manifest["tables"][name] = {"rows": t.num_rows, "sha256": table_sha256(t)}
    bank.table("meta").update(
        where="key = 'manifest'", values={"value": json.dumps(manifest, sort_keys=True)}
    )


# --------------------------------------------------------------------------- export


def test_export_manifest_records_provenance_and_hashes(exported, tiny_bank):
    out, res, _ = exported
    m = res.manifest
    assert (m["format"], m["vocab"], res.vocabs) == ("protodb-export", "v1", ["v1"])
    assert m["schema_version"] == 2 and m["protodb_version"] == protodb.__version__
    assert "@" in m["created_by"] and m["created_at"]
    (gen,) = m["generators"].values()
    (ext,) = m["extractors"].values()
    assert gen["model"] and "revision" in gen and ext["model"] and "revision" in ext
    assert m["tables"]["sets"]["rows"] == len(CLASSES)
    assert all(len(t["sha256"]) == 64 for t in m["tables"].values())
    with tarfile.open(out / "v1.protodb") as tar:
        names = tar.getnames()
        assert "manifest.json" in names
        assert all(n == "manifest.json" or n.startswith("bank") for n in names)
        inside = json.loads(tar.extractfile("manifest.json").read())
    assert inside["tables"] == m["tables"]


def test_export_is_a_deep_copy(bank_copy, tmp_path):
    """The export holds its own data: with the source bank deleted it reads whole."""
    out = tmp_path / "v1_dir"
    protodb.connect(bank_copy, profile="tiny", device="cpu").export(out, vocab="v1")
    shutil.rmtree(bank_copy)
    bank = open_bank(str(out), create=False)
    for name in bank.table_names():
        bank.read(name)
    for version in bank.versions().values():
        assert version >= 1
    db = protodb.connect(out, profile="tiny", device="cpu")
    assert [v.name for v in db.vocabs()] == ["v1"]
    assert db.vocab("v1").segment(make_image(32, 32)).labels.shape == (32, 32)


def test_export_refuses_existing_target(tiny_bank, tmp_path):
    (tmp_path / "x.protodb").write_bytes(b"")
    db = protodb.connect(tiny_bank.path, profile="tiny", device="cpu")
    with pytest.raises(protodb.ProtodbError, match="exists"):
        db.export(tmp_path / "x.protodb", vocab="v1")
    with pytest.raises(protodb.NotFoundError, match="unknown vocabulary"):
        db.export(tmp_path / "y.protodb", vocab="nope")


# --------------------------------------------------------------------------- import


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


def _refused(target: Path, source, match: str, **kw) -> None:
    before = _state(target)
    db = protodb.connect(target, profile="tiny", device="cpu")
    with pytest.raises(ImportRefused, match=match) as err:
        db.import_(source, **kw)
    assert "target bank is unchanged" in str(err.value)
    assert _state(target) == before


def test_import_refuses_wrong_dims(exported, bank_copy, tmp_path):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    (name,) = [n for n in bank.table_names() if n.startswith("prototypes")]
    rows = bank.read(name)
    dim = rows.schema.field("vector").type.list_size
    vecs = np.zeros((rows.num_rows, dim + 1), np.float32)
    rows = rows.set_column(
        rows.schema.get_field_index("vector"), "vector", vectors_to_arrow(vecs, "float16")
    )
    bank.db.drop_table(name)
    bank = open_bank(str(src), create=False)
    bank.create_prototype_table(name, dim + 1, "float16")
    bank.append(name, rows)
    _rehash(src)
    _refused(bank_copy, src, rf"says dim {dim} but table .* holds dim {dim + 1}")


def test_import_refuses_nan(exported, tmp_path):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    (name,) = [n for n in bank.table_names() if n.startswith("prototypes")]
    rows = bank.read(name)
    dim = rows.schema.field("vector").type.list_size
    vecs = np.ones((rows.num_rows, dim), np.float32)
    vecs[3, 5] = np.nan
    rows = rows.set_column(
        rows.schema.get_field_index("vector"), "vector", vectors_to_arrow(vecs, "float16")
    )
    import lance  # lancedb refuses NaN vectors; an attacker writes with Lance itself

    lance.write_dataset(rows, bank.table(name).to_lance().uri, mode="overwrite")
    _rehash(src)
    target = tmp_path / "target"
    open_bank(str(target))  # an empty bank
    _refused(target, src, "non-finite")


def test_import_refuses_altered_content_by_hash(exported, tmp_path):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    bank.table("classes").update(where="true", values={"name": "something else"})
    target = tmp_path / "target"
    open_bank(str(target))
    _refused(target, src, "sha256")


def test_import_refuses_truncated_file(exported, tmp_path):
    data = (exported[0] / "v1.protodb").read_bytes()
    cut = tmp_path / "cut.protodb"
    cut.write_bytes(data[: len(data) // 2])
    target = tmp_path / "target"
    open_bank(str(target))
    _refused(target, cut, "truncated")


def test_import_refuses_unrelated_lance_dataset(tmp_path):
    import lance

    lance.write_dataset(pa.table({"x": [1, 2, 3]}), str(tmp_path / "foreign" / "data.lance"))
    target = tmp_path / "target"
    open_bank(str(target))
    _refused(target, tmp_path / "foreign", "not a protodb bank")
    _refused(target, tmp_path / "foreign" / "data.lance", "not a protodb bank")


def test_import_refuses_same_key_other_provenance(exported, bank_copy, tmp_path):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    rec = bank.read("sets").to_pylist()[0]
    cfg = json.loads(rec["extractor_config"])
    cfg["input_size"] = cfg["input_size"] + 14
    bank.table("sets").update(
        where=f"write_id = '{rec['write_id']}'",
        values={"extractor_config": json.dumps(cfg, sort_keys=True)},
    )
    _rehash(src)
    _refused(
        bank_copy,
        src,
        rf"class '{rec['class_key']}'.*extractor_config is .* there and .*input_size",
    )


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/protodb_evil_abs.txt", "bank/../../x"])
def test_import_refuses_escaping_member_names(exported, tmp_path, member):
    bad = tmp_path / "bad.protodb"
    shutil.copy(exported[0] / "v1.protodb", bad)
    with tarfile.open(bad, "a") as tar:
        info = tarfile.TarInfo(member)
        payload = b"pwned"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    target = tmp_path / "target"
    open_bank(str(target))
    _refused(target, bad, "escape")
    assert not (tmp_path / "evil.txt").exists()
    assert not os.path.exists("/tmp/protodb_evil_abs.txt")


def test_import_refuses_links(exported, tmp_path):
    bad = tmp_path / "link.protodb"
    shutil.copy(exported[0] / "v1.protodb", bad)
    with tarfile.open(bad, "a") as tar:
        info = tarfile.TarInfo("bank/passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    target = tmp_path / "target"
    open_bank(str(target))
    _refused(target, bad, "links")


def test_import_refuses_vocab_name_clash(exported, bank_copy, tmp_path):
    """v1 exists in the target with other classes: refused unless renamed with --as."""
    db = protodb.connect(bank_copy, profile="tiny", device="cpu")
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    row = bank.read("vocabs").to_pylist()[0]
    classes = json.loads(row["classes"])[::-1]
    bank.table("vocabs").update(where="true", values={"classes": json.dumps(classes)})
    _rehash(src)
    _refused(bank_copy, src, "vocabulary 'v1' exists .* --as")
    assert db.import_(src, name="v1_reversed").vocabs == ["v1_reversed"]


# --------------------------------------------------------------------------- merge / CLI


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
    before = _state(target)
    with pytest.raises(ImportRefused, match="not a protodb bank"):
        protodb.connect(target).merge(tmp_path / "empty")
    assert _state(target) == before


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
