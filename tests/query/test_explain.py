from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from protodb.errors import ProtodbError
from protodb.images import decode_png
from protodb.query.assemble import assemble
from protodb.query.explain import support_regions


@pytest.fixture(scope="module")
def assembled(tiny_bank):
    (p,) = assemble(tiny_bank.db.bank, tiny_bank.vocab)
    return p


def test_explain_writes_a_png_of_support_regions(tiny_bank, tmp_path):
    img = make_image(50, 70, 0)
    handle = tiny_bank.db.vocab("v1")
    out = tmp_path / "why.png"
    e = handle.explain(img, 12, 30, out=out)
    res = handle.segment(img)
    assert (
        e.label == res.labels[30, 12]
        and e.class_name == ["background", "red apple", "grass"][e.label]
    )
    (ext,) = res.winners
    assert e.extractor_id == ext and e.row == res.winners[ext][30, 12] >= 0
    assert e.similarity == pytest.approx(float(res.winner_scores[ext][30, 12]))
    proto = e.prototype
    assert proto["polarity"] == ("bg" if e.label == 0 else "fg")
    assert proto["level"] in ("class", "instance", "part")
    assert e.regions and all(r.mask.any() for r in e.regions)
    assert e.picture == str(out)
    with Image.open(out) as im:
        assert im.mode == "RGB"
        assert im.width >= 2 * 160  # the query image and at least one support tile
        pixels = np.asarray(im)
    # the support tiles show the region tinted red
    tiles = pixels[:, 164:]
    assert ((tiles[..., 0] > 150) & (tiles[..., 1] < 120)).any()
    assert "via" in e.describe() and str(e.row) in e.describe()


def _rows(p, level, polarity="fg"):
    return [i for i, r in enumerate(p.rows) if r["level"] == level and r["polarity"] == polarity]


def test_instance_region_is_the_stored_mask(tiny_bank, assembled):
    bank, vocab = tiny_bank.db.bank, tiny_bank.vocab
    ext = vocab.extractors[0].extractor_id
    for polarity in ("fg", "bg"):
        row = assembled.rows[_rows(assembled, "instance", polarity)[0]]
        (region,) = support_regions(bank, vocab, ext, row)
        assert region.support == row["support"]
        where = (
            f"class_key = '{row['class_key']}' AND index = {row['support']}"
            f" AND generator_id = '{row['generator_id']}'"
        )
        (m,) = bank.read("masks", where).to_pylist()
        np.testing.assert_array_equal(region.mask, decode_png(m[f"{polarity}_png"], "1"))
        assert region.image.shape[:2] == region.mask.shape


def test_part_region_is_its_cells(tiny_bank, assembled):
    bank, vocab = tiny_bank.db.bank, tiny_bank.vocab
    ext = vocab.extractors[0].extractor_id
    row = assembled.rows[_rows(assembled, "part")[0]]
    regions = support_regions(bank, vocab, ext, row)
    assert regions
    cells = {
        c["support"]: c
        for c in bank.read(
            "cells", f"class_key = '{row['class_key']}' AND polarity = 'fg'"
        ).to_pylist()
    }
    for r in regions:
        c = cells[r.support]
        grid = np.frombuffer(c["cells"], "<i2").reshape(c["grid_h"], c["grid_w"])
        # every grid cell of the part is inside the region, every other cell outside
        h, w = r.mask.shape
        sy, sx = h // c["grid_h"], w // c["grid_w"]
        np.testing.assert_array_equal(r.mask[::sy, ::sx], grid == row["part"])


def test_class_region_covers_every_used_support(tiny_bank, assembled):
    bank, vocab = tiny_bank.db.bank, tiny_bank.vocab
    ext = vocab.extractors[0].extractor_id
    row = assembled.rows[_rows(assembled, "class")[0]]
    regions = support_regions(bank, vocab, ext, row)
    n_instances = sum(
        1
        for r in assembled.rows
        if r["level"] == "instance" and r["polarity"] == "fg" and r["class_key"] == row["class_key"]
    )
    assert len(regions) == n_instances


def test_explain_refuses_pixels_outside(tiny_bank):
    with pytest.raises(ProtodbError, match="outside the image"):
        tiny_bank.db.vocab("v1").explain(make_image(10, 20), 20, 3)


def test_several_pixels_are_explained_from_one_segmentation(tiny_bank, tmp_path, monkeypatch):
    from protodb.query.segment import Segmenter

    img = make_image(50, 70, 0)
    handle = tiny_bank.db.vocab("v1")
    singles = [handle.explain(img, x, y) for x, y in [(12, 30), (60, 5), (0, 49)]]
    calls = []
    real = Segmenter.segment

    def counting(self, image):  # the real segmentation, counted
        calls.append(image.shape)
        return real(self, image)

    monkeypatch.setattr(Segmenter, "segment", counting)
    many = handle.explain_points(img, [(12, 30), (60, 5), (0, 49)], out=tmp_path / "why.png")
    assert len(calls) == 1
    assert [e.to_dict() | {"picture": None} for e in many] == [
        e.to_dict() | {"picture": None} for e in singles
    ]
    assert [e.picture for e in many] == [
        str(tmp_path / n) for n in ("why_12_30.png", "why_60_5.png", "why_0_49.png")
    ]
    assert all((tmp_path / n).exists() for n in ("why_12_30.png", "why_60_5.png", "why_0_49.png"))


def test_every_point_is_checked_before_any_work(tiny_bank, tmp_path):
    handle = tiny_bank.db.vocab("v1")
    with pytest.raises(ProtodbError, match=r"--at 70,0 is outside the image \(70x50\)"):
        handle.explain_points(make_image(50, 70, 0), [(1, 1), (70, 0)], out=tmp_path / "w.png")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ProtodbError, match="no pixel to explain"):
        handle.explain_points(make_image(50, 70, 0), [])


def test_cli_explain_with_repeated_at(tiny_bank, tmp_path):
    import json

    from typer.testing import CliRunner

    from protodb.cli.app import app

    path = tmp_path / "img.png"
    Image.fromarray(make_image(50, 70, 0)).save(path)
    args = ["--bank", str(tiny_bank.path), "--profile", "tiny", "explain", str(path)]
    args += ["--vocab", "v1", "--at", "12,30", "--at", "60,5", "--out", str(tmp_path / "w.png")]
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output[r.output.index("[") :])
    assert [(d["x"], d["y"]) for d in data] == [(12, 30), (60, 5)]
    assert (tmp_path / "w_12_30.png").exists() and (tmp_path / "w_60_5.png").exists()
    r = CliRunner().invoke(app, [*args[:-6], "--vocab", "v1", "--at", "12;30"])
    assert r.exit_code != 0 and "--at '12;30' must be X,Y" in r.output


def test_out_without_a_suffix_is_a_folder_and_a_bad_suffix_is_refused_first(tiny_bank, tmp_path):
    """Issue 27 item 10a: ``--out PATH`` with no image suffix was an internal error (PIL's
    'unknown file extension') after the segmentation; now it is a folder, made on write."""
    from protodb.errors import ParameterError

    handle = tiny_bank.db.vocab("v1")
    img = make_image(50, 70, 0)
    one = handle.explain_points(img, [(12, 30)], out=tmp_path / "why")
    assert one[0].picture == str(tmp_path / "why" / "image_explain.png")
    two = handle.explain_points(img, [(1, 2), (3, 4)], out=tmp_path / "why")  # exists now
    names = [Path(e.picture).name for e in two]
    assert names == ["image_explain_1_2.png", "image_explain_3_4.png"]
    assert all(Path(e.picture).exists() for e in one + two)
    with pytest.raises(ParameterError, match=r"out='.*why.txt' is not a picture path"):
        handle.explain_points(img, [(1, 1)], out=tmp_path / "why.txt")
    assert not (tmp_path / "why.txt").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ParameterError, match=r"is under '.*file', which is not a folder"):
        handle.explain_points(img, [(1, 1)], out=tmp_path / "file" / "sub" / "w.png")
