"""Hostile imports are refused and leave the target unchanged (protodb.bank.share.validate)."""

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
from conftest import bank_state

import protodb
from protodb.bank.schema import vectors_to_arrow
from protodb.bank.share.manifest import ImportRefused, table_sha256
from protodb.bank.store import open_bank


def _copy_export(exported, tmp_path) -> Path:
    src = exported[0] / "v1_dir"
    dst = tmp_path / "export"
    shutil.copytree(src, dst)
    return dst


def _rehash(export_dir: Path, provenance: bool = True) -> None:
    """Recompute the manifest's row counts and hashes (and, with ``provenance``, its
    generators and extractors), as a careful attacker would, so that the checks behind the
    hash are what refuses the import."""
    bank = open_bank(str(export_dir), create=False)
    manifest = json.loads(bank.meta()["manifest"])
    for name in manifest["tables"]:
        t = bank.read(name)
        manifest["tables"][name] = {"rows": t.num_rows, "sha256": table_sha256(t)}
    if provenance:
        for s in bank.read("sets").to_pylist():
            manifest["generators"][s["generator_id"]] = json.loads(s["generator_config"])
            manifest["extractors"][s["extractor_id"]] = json.loads(s["extractor_config"])
            manifest["recipes"][s["recipe_id"]] = json.loads(s["recipe"])
    bank.table("meta").update(
        where="key = 'manifest'", values={"value": json.dumps(manifest, sort_keys=True)}
    )


def _refused(target: Path, source, match: str, **kw) -> None:
    before = bank_state(target)
    db = protodb.connect(target, profile="tiny", device="cpu")
    with pytest.raises(ImportRefused, match=match) as err:
        db.import_(source, **kw)
    assert "target bank is unchanged" in str(err.value)
    assert bank_state(target) == before


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


def _update(src: Path, table: str, where: str, values: dict) -> None:
    open_bank(str(src), create=False).table(table).update(where=where, values=values)


@pytest.mark.parametrize(
    "name, match",
    [
        ("red\u202eelppa", "format characters"),  # a bidi override
        ("red\x1b[31mapple", "control characters"),
        ("x" * 300, "characters long"),
        ("  red   apple ", "canonical form"),
    ],
)
def test_import_refuses_class_names_add_would_refuse(exported, bank_copy, tmp_path, name, match):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    key = bank.read("classes").column("class_key").to_pylist()[0]
    for table in ("classes", "sets"):
        _update(src, table, f"class_key = '{key}'", {"name": name})
    _rehash(src)
    _refused(bank_copy, src, match)


def test_import_refuses_a_vocabulary_without_its_sets(exported, bank_copy, tmp_path):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    key = bank.read("sets").column("class_key").to_pylist()[0]
    bank.table("sets").delete(f"class_key = '{key}'")
    _rehash(src)
    _refused(bank_copy, src, "no such prototype set")


def test_import_refuses_malformed_vocabulary_json(exported, bank_copy, tmp_path):
    src = _copy_export(exported, tmp_path)
    _update(src, "vocabs", "true", {"classes": "[{not json"})
    _rehash(src)
    _refused(bank_copy, src, "not valid JSON")


def test_import_refuses_a_manifest_whose_provenance_differs(exported, bank_copy, tmp_path):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    rec = bank.read("sets").to_pylist()[0]
    cfg = json.loads(rec["extractor_config"])
    cfg["layer"] = "something_else"
    _update(src, "sets", "true", {"extractor_config": json.dumps(cfg, sort_keys=True)})
    _rehash(src, provenance=False)  # the tables' hashes agree, the manifest's extractors do not
    _refused(bank_copy, src, "manifest's extractors do not match")


@pytest.mark.parametrize("payload", [b"GIF89a not a png", b"\x89PNG\r\n\x1a\n truncated"])
def test_import_refuses_support_images_that_are_not_their_png(
    exported, bank_copy, tmp_path, payload
):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    tbl = bank.table("supports")
    rows = tbl.to_arrow()
    cols = {n: rows.column(n) for n in rows.schema.names}
    cols["image_png"] = pa.array([payload] * rows.num_rows, pa.binary())
    tbl.add(pa.table(cols, schema=rows.schema), mode="overwrite")
    _rehash(src)
    _refused(bank_copy, src, "PNG")


def test_import_refuses_supports_over_the_pixel_limit(exported, bank_copy, tmp_path, monkeypatch):
    src = _copy_export(exported, tmp_path)
    monkeypatch.setenv("PROTODB_MAX_PIXELS", "100")
    _refused(bank_copy, src, "pixel limit")


def _with_dim(src: Path, delta: int) -> int:
    """Rewrite the source's prototype table with vectors ``delta`` wider and its sets' records to
    agree (a careful attacker's consistent lie); returns the true dim."""
    bank = open_bank(str(src), create=False)
    (name,) = [n for n in bank.table_names() if n.startswith("prototypes")]
    rows = bank.read(name)
    dim = rows.schema.field("vector").type.list_size
    vecs = np.zeros((rows.num_rows, dim + delta), np.float32)
    rows = rows.set_column(
        rows.schema.get_field_index("vector"), "vector", vectors_to_arrow(vecs, "float16")
    )
    bank.db.drop_table(name)
    bank = open_bank(str(src), create=False)
    bank.create_prototype_table(name, dim + delta, "float16")
    bank.append(name, rows)
    bank.table("sets").update(where="true", values={"dim": dim + delta})
    _rehash(src)
    return dim


def test_import_refuses_dims_its_extractor_does_not_make(exported, bank_copy, tmp_path):
    src = _copy_export(exported, tmp_path)
    dim = _with_dim(src, 4)
    _refused(bank_copy, src, rf"holds vectors of dim {dim + 4}, but extractor .* makes dim {dim}")


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"recipe_id": "otsu-XYZ"}, "recipe id 'otsu-XYZ' is not of the form"),
        ({"recipe_id": "otsu-0123456789ab"}, "does not match its stored recipe config"),
        ({"recipe": "{not json"}, "has no readable recipe config"),
    ],
)
def test_import_refuses_recipes_that_are_malformed_or_disagree(
    exported, bank_copy, tmp_path, values, match
):
    src = _copy_export(exported, tmp_path)
    open_bank(str(src), create=False).table("sets").update(values=values)
    _rehash(src, provenance=False)
    _refused(bank_copy, src, match)


def test_import_refuses_a_manifest_whose_recipes_differ(exported, bank_copy, tmp_path):
    src = _copy_export(exported, tmp_path)
    bank = open_bank(str(src), create=False)
    manifest = json.loads(bank.meta()["manifest"])
    assert set(manifest["recipes"]) == set(bank.read("sets").column("recipe_id").to_pylist())
    for config in manifest["recipes"].values():
        config["parts"] = 7
    bank.table("meta").update(
        where="key = 'manifest'", values={"value": json.dumps(manifest, sort_keys=True)}
    )
    _refused(bank_copy, src, "the manifest's recipes do not match")
