"""``segment --ray`` (protodb.scale.segment) on the session's local Ray cluster and moto's S3:
the same files, byte for byte, as the single-process ``segment`` of the same 20 images; outputs
to an s3:// prefix; resuming with skip_existing; the CLI joining the cluster by its address;
bad inputs as one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import S3_BUCKET, make_image
from PIL import Image
from typer.testing import CliRunner

from protodb.cli.app import app
from protodb.errors import NotFoundError, ProtodbError

N_IMAGES = 20
FILES = ("label_png", "overlay_png", "rle_json")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """20 PNGs of several sizes: the test's gradients-and-disc images and plain noise."""
    folder = tmp_path_factory.mktemp("seg_ray") / "images"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(N_IMAGES):
        h, w = 40 + 3 * i, 56 + 2 * (i % 5)
        arr = make_image(h, w, seed=i) if i % 3 else rng.integers(0, 256, (h, w, 3), np.uint8)
        Image.fromarray(arr).save(folder / f"img{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def reference(tiny_bank, images, tmp_path_factory) -> tuple[Path, list[dict]]:
    """The single-process run: its output folder and summaries."""
    out = tmp_path_factory.mktemp("seg_ray") / "single"
    return out, tiny_bank.db.segment([images], vocab="v1", out=out, progress=False)


def _relative(summary: dict, out: str) -> dict:
    """The summary with its file locations relative to ``out``."""
    return {
        k: v.replace(out, "OUT") if k in (*FILES, "scores_npy") and v else v
        for k, v in summary.items()
    }


def _s3_bytes(s3_server, uri: str) -> bytes:
    key = uri[len(f"s3://{S3_BUCKET}/") :]
    return s3_server.client.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()


def test_ray_workers_import_this_checkout(ray_cluster, ray_timeout):
    """The actors run this worktree's protodb (PYTHONPATH reaches Ray's workers)."""
    import ray

    import protodb

    @ray.remote(num_cpus=0.25)
    def where() -> str:
        import protodb

        return protodb.__file__

    assert ray.get(where.remote(), timeout=120) == protodb.__file__


def test_ray_segment_gives_the_single_process_files(
    ray_cluster, ray_timeout, tiny_bank, images, reference, tmp_path
):
    """20 images on 2 actors: the same summaries, in input order, and byte-identical files."""
    from protodb.query.coco import write_coco

    ref_out, ref = reference
    out = tmp_path / "ray"
    write_coco(tmp_path / "single.json", ref, tiny_bank.vocab)
    got = tiny_bank.db.segment(
        [str(images / "img0*.png"), images / "img1*.png"],  # a glob and a path-like glob
        vocab="v1",
        out=out,
        progress=False,
        ray="local",  # this process is attached already: the session cluster
        workers=2,
        coco=tmp_path / "ray.json",  # the same COCO file as the single-process run's
    )
    assert len(got) == N_IMAGES
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "single.json").read_bytes()
    assert [_relative(s, str(out)) for s in got] == [_relative(s, str(ref_out)) for s in ref]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref_out.iterdir())
    for p in ref_out.iterdir():
        if p.suffix == ".png":
            assert (out / p.name).read_bytes() == p.read_bytes(), p.name
        else:
            assert (out / p.name).read_text() == p.read_text().replace(str(ref_out), str(out))
    labels = set().union(*(np.unique(np.asarray(Image.open(s["label_png"]))) for s in got))
    assert len(labels) > 1  # the label maps are not constant: the comparison can fail


def test_ray_segment_s3_in_and_out_then_resume(
    ray_cluster, ray_timeout, s3_server, tiny_bank, images, reference
):
    """Images read from an s3:// prefix, outputs written to one: the label PNGs are the single
    run's bytes; with skip_existing a second run redoes only the images whose summary is gone."""
    ref_out, ref = reference
    key = uuid.uuid4().hex[:12]
    base = f"s3://{S3_BUCKET}/{key}"
    for p in sorted(images.iterdir()):
        s3_server.client.upload_file(str(p), S3_BUCKET, f"{key}/in/{p.name}")
    db = tiny_bank.db
    got = db.segment([f"{base}/in/"], vocab="v1", out=f"{base}/out", progress=False, ray="local")
    assert [s["image"] for s in got] == [f"{base}/in/img{i:02d}.png" for i in range(N_IMAGES)]
    for mine, theirs in zip(got, ref, strict=True):
        assert mine["label_png"] == f"{base}/out/{Path(theirs['label_png']).name}"
        for field in FILES:
            assert _s3_bytes(s3_server, mine[field]) == Path(theirs[field]).read_bytes()
        assert mine["areas"] == theirs["areas"] and not mine["skipped"]
        assert json.loads(
            _s3_bytes(s3_server, f"{base}/out/{Path(theirs['image']).stem}.json")
        ) == {k: v for k, v in mine.items() if k != "skipped"}
    redo = ["img03", "img11", "img19"]
    for stem in redo:
        for name in (f"{stem}.json", f"{stem}.png"):
            s3_server.client.delete_object(Bucket=S3_BUCKET, Key=f"{key}/out/{name}")
    again = db.segment(
        [f"{base}/in/*.png"],
        vocab="v1",
        out=f"{base}/out/",
        progress=False,
        ray="local",
        workers=1,
        skip_existing=True,
    )
    assert [Path(s["image"]).stem for s in again if not s["skipped"]] == redo
    assert [{k: v for k, v in s.items() if k != "skipped"} for s in again] == [
        {k: v for k, v in s.items() if k != "skipped"} for s in got
    ]
    for stem in redo:
        assert (
            _s3_bytes(s3_server, f"{base}/out/{stem}.png") == (ref_out / f"{stem}.png").read_bytes()
        )


def test_cli_joins_the_cluster_by_address_and_resumes(
    ray_address, ray_timeout, tiny_bank, images, reference, tmp_path
):
    """`protodb segment ... --ray HOST:PORT --skip-existing` in a new process joins the session
    cluster and redoes only the images whose summary is missing, with the same bytes."""
    ref_out, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    for stem in ("img00", "img07"):
        (out / f"{stem}.json").unlink()
        (out / f"{stem}.png").unlink()
    cmd = [
        *(sys.executable, "-m", "protodb.cli.app", "--bank", str(tiny_bank.path)),
        *("--profile", "tiny", "--device", "cpu", "segment", str(images), "--vocab", "v1"),
        *("--out", str(out), "--skip-existing", "--json", "--workers", "1", "--ray", ray_address),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=240)
    assert r.returncode == 0, r.stderr
    summaries = json.loads(r.stdout)["images"]
    assert [Path(s["image"]).stem for s in summaries if not s["skipped"]] == ["img00", "img07"]
    assert "Traceback" not in r.stderr and " E " not in r.stderr, r.stderr
    for stem in ("img00", "img07"):
        assert (out / f"{stem}.png").read_bytes() == (ref_out / f"{stem}.png").read_bytes()


def test_an_unreadable_s3_image_stops_the_run_in_one_line(
    ray_cluster, ray_timeout, s3_server, tiny_bank, tmp_path
):
    """An s3:// image is read by its actor: a broken one is the run's one-line error."""
    base = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"
    key = base[len(f"s3://{S3_BUCKET}/") :]
    s3_server.client.put_object(Bucket=S3_BUCKET, Key=f"{key}/in/broken.png", Body=b"not a png")
    with pytest.raises(ProtodbError, match="cannot read image") as err:
        tiny_bank.db.segment(
            [f"{base}/in"], vocab="v1", out=tmp_path / "o", progress=False, ray="local", workers=1
        )
    assert str(err.value).count("\n") == 0 and f"{base}/in/broken.png" in str(err.value)
    assert not (tmp_path / "o" / "broken.json").exists()


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["IMGS", "--ray=IMGS"], "is not a Ray address"),
        (["IMGS", "MISSING", "--ray"], "does not exist"),
        (["IMGS", "--workers", "2"], "--workers 2 needs --ray"),
        (["IMGS", "--ray", "--student", "s.pt"], "--student runs in this process only"),
        (["IMGS", "--out", "s3://b/x"], "s3:// inputs and outputs need Ray"),
        (["IMGS", "--out", "FILE", "--ray"], "is a file"),
        (["IMGS", "--vocab", "nope", "--ray"], "unknown vocabulary 'nope'"),
    ],
)
def test_bad_input_is_one_line(tiny_bank, images, tmp_path, args, message):
    """Checked before any cluster starts: one line on stderr, a non-zero exit."""
    (tmp_path / "file").write_text("x")
    subs = {
        "IMGS": str(images),
        "MISSING": str(tmp_path / "missing.png"),
        "FILE": str(tmp_path / "file"),
    }
    argv = [subs.get(a, a) for a in args]
    base = ["--vocab", "v1", "--out", str(tmp_path / "out")]
    if "--vocab" in argv:
        base = base[2:]
    if "--out" in argv:
        base = [a for a in base if a not in ("--out", str(tmp_path / "out"))]
    result = runner.invoke(
        app, ["--bank", str(tiny_bank.path), "--profile", "tiny", "segment", *argv, *base]
    )
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("pre-filter")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_an_s3_prefix_without_images_or_bucket_is_one_line(s3_server, tiny_bank, images, tmp_path):
    base = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"
    with pytest.raises(NotFoundError, match="holds no images") as err:
        tiny_bank.db.segment([f"{base}/none/"], vocab="v1", out=tmp_path, ray="local")
    assert "\n" not in str(err.value)
    with pytest.raises(NotFoundError, match="matches no image"):
        tiny_bank.db.segment([f"{base}/none/*.jpg"], vocab="v1", out=tmp_path, ray="local")
    with pytest.raises(ProtodbError, match="s3://no-such-bucket/x") as err:
        tiny_bank.db.segment(["s3://no-such-bucket/x/"], vocab="v1", out=tmp_path, ray="local")
    assert "\n" not in str(err.value)
    with pytest.raises(ProtodbError, match="--out 's3://no-such-bucket/out' failed") as err:
        tiny_bank.db.segment([images], vocab="v1", out="s3://no-such-bucket/out", ray="local")
    assert "\n" not in str(err.value)


def test_s3_listing_is_a_folder_an_object_or_a_pattern(s3_server):
    """expand_s3 reads a prefix as a folder (not its sub-prefixes), an object as itself, and
    a pattern with * within one part (** across parts)."""
    from protodb.scale.segment import expand_s3

    key = uuid.uuid4().hex[:12]
    for name in ("a.png", "b.JPG", "notes.txt", "sub/c.png"):
        s3_server.client.put_object(Bucket=S3_BUCKET, Key=f"{key}/{name}", Body=b"x")
    base = f"s3://{S3_BUCKET}/{key}"
    assert expand_s3(base) == [f"{base}/a.png", f"{base}/b.JPG"]
    assert expand_s3(f"{base}/") == expand_s3(base)
    assert expand_s3(f"{base}/sub/c.png") == [f"{base}/sub/c.png"]
    assert expand_s3(f"{base}/*.png") == [f"{base}/a.png"]
    assert expand_s3(f"{base}/**.png") == [f"{base}/a.png", f"{base}/sub/c.png"]
    with pytest.raises(NotFoundError, match="does not exist"):
        expand_s3(f"{base}/sub/d.png")
