"""Fixtures of the sharing tests."""

import pytest

import protodb


@pytest.fixture(scope="module")
def exported(tiny_bank, tmp_path_factory):
    """The session bank's vocabulary v1 exported to one file and to a directory."""
    out = tmp_path_factory.mktemp("export")
    db = protodb.connect(tiny_bank.path, profile="tiny", device="cpu")
    file_res = db.export(out / "v1.protodb", vocab="v1")
    dir_res = db.export(out / "v1_dir", vocab="v1")
    return out, file_res, dir_res
