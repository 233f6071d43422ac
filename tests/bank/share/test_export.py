"""Export: manifest, deep copy, refusals (protodb.bank.share.export)."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
from conftest import CLASSES, make_image

import protodb
from protodb.bank.schema import SCHEMA_VERSION
from protodb.bank.store import open_bank


def test_export_manifest_records_provenance_and_hashes(exported, tiny_bank):
    out, res, _ = exported
    m = res.manifest
    assert (m["format"], m["vocab"], res.vocabs) == ("protodb-export", "v1", ["v1"])
    assert m["schema_version"] == SCHEMA_VERSION and m["protodb_version"] == protodb.__version__
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
