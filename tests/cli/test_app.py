"""CLI tests through typer's CliRunner, on the tiny profile (real model classes, no stand-ins)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from protodb.cli.app import app

runner = CliRunner()


def run(bank, *args, ok=True):
    result = runner.invoke(app, ["--bank", str(bank), "--profile", "tiny", *args])
    if ok:
        assert result.exit_code == 0, (result.output, result.stderr)
    return result


@pytest.fixture(scope="module")
def cli_bank(tmp_path_factory):
    """A bank made through the CLI: 'red apple' and grass (n=3), vocabulary v1."""
    bank = tmp_path_factory.mktemp("cli") / "bank"
    start = time.perf_counter()
    run(bank, "add", "red apple", "grass", "--n", "3", "-q")
    first = time.perf_counter() - start
    run(bank, "vocab", "create", "v1", "red apple", "grass")
    return bank, first


@pytest.fixture(scope="module")
def rgb_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.jpg"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (45, 61, 3), dtype=np.uint8)).save(path)
    return path


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("add", "ls", "show", "vocab", "segment", "explain", "history", "demo"):
        assert cmd in result.output


def test_readd_generates_nothing_and_is_fast(cli_bank):
    bank, first = cli_bank
    start = time.perf_counter()
    result = run(bank, "add", "red apple", "grass", "--n", "3", "-q")
    again = time.perf_counter() - start
    assert "nothing generated" in result.output
    assert result.output.count("already in the bank") == 2
    assert again < first / 3


def test_segment_writes_label_png_of_image_size(cli_bank, rgb_image, tmp_path):
    bank, _ = cli_bank
    out = tmp_path / "out"
    result = run(bank, "segment", str(rgb_image), "--vocab", "v1", "--out", str(out), "-q")
    assert "photo.jpg" in result.output
    label = Image.open(out / "photo.png")
    assert label.mode == "P"
    assert label.size == (61, 45)
    assert set(np.unique(np.asarray(label))) <= {0, 1, 2}
    assert (out / "photo_overlay.png").exists()


def test_segment_json_summary(cli_bank, rgb_image, tmp_path):
    bank, _ = cli_bank
    result = run(bank, "segment", str(rgb_image), "--vocab", "v1", "--out", str(tmp_path), "--json")
    data = json.loads(result.stdout)
    summary = data["images"]
    assert summary[0]["height"] == 45 and summary[0]["width"] == 61
    assert abs(sum(summary[0]["areas"].values()) - 1.0) < 1e-3
    run_ = data["run"]  # the run's summary: images, seconds per image, class shares
    assert (run_["images"], run_["segmented"], run_["skipped"]) == (1, 1, 0)
    assert run_["seconds_per_image"] > 0 and run_["pixels"] == 45 * 61
    assert list(run_["shares"]) == ["background", "red apple", "grass"]
    for name, share in run_["shares"].items():
        assert share == summary[0]["areas"].get(name, 0.0)
    text = run(bank, "segment", str(rgb_image), "--vocab", "v1", "--out", str(tmp_path), "-q")
    lines = text.stdout.splitlines()
    assert lines[1].startswith("1 images (1 segmented), ") and " s/image, " in lines[1]
    assert lines[2].split() == ["class", "pixels"] and len(lines) == 6
    assert lines[3].startswith("background ") and lines[3].endswith("%")


def test_segment_query_options_and_skip_existing(cli_bank, rgb_image, tmp_path):
    bank, _ = cli_bank
    out = str(tmp_path / "o")
    args = ("segment", str(rgb_image), "--vocab", "v1", "--out", out, "--json")
    opts = ("--no-windows", "--pamr", "--save-scores", "--no-stuff-filter", "--eta", "3")
    result = run(bank, *args, *opts)
    assert "pre-filter off" in result.stderr and "tiny" in result.stderr
    (s,) = json.loads(result.stdout)["images"]
    assert s["skipped"] is False and s["kept"] is None
    assert np.load(s["scores_npy"]).shape == (3, 45, 61)
    assert json.loads((tmp_path / "o" / "photo.json").read_text())["rle_json"] == s["rle_json"]
    again = run(bank, *args, "--skip-existing")
    again = json.loads(again.stdout)
    assert again["images"][0]["skipped"] is True
    assert (again["run"]["skipped"], again["run"]["seconds_per_image"]) == (1, None)
    pre = run(bank, *args, "--prefilter", "--skip-existing")  # explicit: no notice
    assert "pre-filter" not in pre.stderr
    bad = run(bank, *args, "--eta", "0", ok=False)
    assert bad.exit_code != 0 and "eta=0" in bad.stderr


def test_explain_command(cli_bank, rgb_image, tmp_path):
    bank, _ = cli_bank
    out = tmp_path / "why.png"
    result = run(
        bank, "explain", str(rgb_image), "--vocab", "v1", "--at", "30,20", "--out", str(out)
    )
    assert "pixel (30, 20)" in result.output and str(out) in result.output
    with Image.open(out) as im:
        assert im.width >= 320
    data = json.loads(
        run(
            bank,
            "explain",
            str(rgb_image),
            "--vocab",
            "v1",
            "--at",
            "0,0",
            "--out",
            str(out),
            "--json",
        ).stdout
    )
    assert data["x"] == 0 and data["prototype"]["polarity"] in ("fg", "bg")
    bad = run(bank, "explain", str(rgb_image), "--vocab", "v1", "--at", "3;4", ok=False)
    assert bad.exit_code != 0 and "--at '3;4'" in bad.stderr and "Traceback" not in bad.output
    far = run(bank, "explain", str(rgb_image), "--vocab", "v1", "--at", "99,1", ok=False)
    assert far.exit_code != 0 and "outside the image (61x45)" in far.stderr


def test_v1_is_byte_identical_after_adding_a_class(cli_bank, rgb_image, tmp_path):
    bank, _ = cli_bank
    run(bank, "segment", str(rgb_image), "--vocab", "v1", "--out", str(tmp_path / "a"), "-q")
    run(bank, "add", "sky", "--n", "2", "-q")
    run(bank, "segment", str(rgb_image), "--vocab", "v1", "--out", str(tmp_path / "b"), "-q")
    a = (tmp_path / "a" / "photo.png").read_bytes()
    b = (tmp_path / "b" / "photo.png").read_bytes()
    assert a == b
    history = run(bank, "history", "--json")
    ops = [e["op"] for e in json.loads(history.stdout)]
    assert ops[:3] == ["add", "add", "vocab create"] and ops[-1] == "add"
    versions = [e["version"] for e in json.loads(history.stdout)]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_listings(cli_bank):
    bank, _ = cli_bank
    assert "red apple" in run(bank, "ls").output
    classes = json.loads(run(bank, "ls", "--json").stdout)
    assert {"red apple", "grass"} <= {c["name"] for c in classes}
    shown = json.loads(run(bank, "show", "Red  Apple", "--json").stdout)
    assert shown["name"] == "red apple" and shown["sets"][0]["n"] == 3
    assert "v1" in run(bank, "vocab", "ls").output
    text = run(bank, "vocab", "show", "v1").output
    assert "1: red apple" in text and "2: grass" in text
    assert json.loads(run(bank, "vocab", "show", "v1", "--json").stdout)["name"] == "v1"
    assert "red apple" in run(bank, "history").output


def test_vocab_show_gives_each_class_kind_as_the_query_uses_it(cli_bank):
    bank, _ = cli_bank
    text = run(bank, "vocab", "show", "v1").output
    assert "1: red apple (thing, lexicon; generator" in text
    assert "2: grass (stuff, lexicon; generator" in text
    shown = json.loads(run(bank, "vocab", "show", "v1", "--json").stdout)
    assert [(c["kind"], c["kind_source"]) for c in shown["classes"]] == [
        ("thing", "lexicon"),
        ("stuff", "lexicon"),
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["segment", "IMG", "--vocab", "nope", "--out", "OUT"], "unknown vocabulary 'nope'"),
        (["vocab", "create", "v9", "banana"], "class 'banana' is not in the bank"),
        (["segment", "missing.jpg", "--vocab", "v1", "--out", "OUT"], "does not exist"),
        (["segment", "BAD", "--vocab", "v1", "--out", "OUT"], "cannot read image"),
        (["add", ""], "empty class name"),
        (["add", "   "], "empty class name"),
        (["add", "x", "--n", "0"], "--n 0 is out of range"),
        (["add", "x", "--extractor", "nope"], "unknown extractor 'nope'"),
        (["vocab", "create", "v1", "grass"], "vocabulary 'v1' exists"),
        (["vocab", "create", "bad name", "grass"], "invalid vocabulary name"),
        (["vocab", "create", "v8", "grass", "Grass"], "listed twice"),
        (["show", "banana"], "class 'banana' is not in the bank"),
        (["add", "x", "--template", "no placeholder"], "must contain"),
    ],
)
def test_user_mistakes_exit_nonzero_with_message(cli_bank, rgb_image, tmp_path, args, needle):
    bank, _ = cli_bank
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    args = [
        {"IMG": str(rgb_image), "OUT": str(tmp_path / "o"), "BAD": str(bad)}.get(a, a) for a in args
    ]
    before = run(bank, "history", "--json").output
    result = run(bank, *args, ok=False)
    assert result.exit_code != 0
    assert needle in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert run(bank, "history", "--json").output == before  # nothing written
    assert not (tmp_path / "o").exists()


def test_bad_option_and_profile(tmp_path):
    result = runner.invoke(app, ["--bank", str(tmp_path / "b"), "add", "x", "--steps", "abc"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["--bank", str(tmp_path / "b"), "--profile", "huge", "ls"])
    assert result.exit_code != 0 and "unknown profile 'huge'" in result.stderr


def test_read_commands_do_not_create_a_bank(tmp_path):
    missing = tmp_path / "nobank"
    result = runner.invoke(app, ["--bank", str(missing), "ls"])
    assert result.exit_code != 0 and "no protodb bank" in result.stderr
    assert not missing.exists()


def test_add_from_file(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("pear\n\n")
    result = run(tmp_path / "bank", "add", "--from", str(classes), "--n", "1", "-q", "--json")
    assert json.loads(result.stdout)[0]["name"] == "pear"
    missing = run(tmp_path / "bank", "add", "--from", str(tmp_path / "none.txt"), ok=False)
    assert missing.exit_code != 0 and "cannot read --from file" in missing.stderr


def test_recipes_make_sets_and_a_vocabulary_picks_one(tmp_path):
    """Another --mask-source (or --n, --parts) is another set; `show` lists the recipes; a bad
    --recipe is one line on stderr, exit 2 (a user error), and the bank unchanged."""
    import re

    from conftest import bank_state

    bank = tmp_path / "bank"
    first = run(bank, "add", "sky", "--n", "1", "--steps", "2", "-q").stdout
    second = run(bank, "add", "sky", "--n", "1", "--steps", "2", "--mask-source", "maskcut", "-q")
    assert "added recipe otsu-" in first and "added recipe maskcut-" in second.stdout
    again = run(bank, "add", "sky", "--n", "1", "--steps", "2", "--mask-source", "maskcut", "-q")
    assert "already in the bank" in again.stdout and "recipe maskcut-" in again.stdout
    shown = run(bank, "show", "sky").stdout
    plain, cut = re.findall(r"recipe ((?:otsu|maskcut)-[0-9a-f]{12})", shown)
    assert plain.startswith("otsu-") and cut.startswith("maskcut-") and "parts K=32" in shown
    state = bank_state(bank)
    for args, needle in [
        (["--recipe", "sky=nope"], "is not a recipe id"),
        (["--recipe", "sky=otsu-000000000000"], "has no prototype set of recipe"),
        (["--recipe", f"grass={cut}"], "names a class that is not in the vocabulary"),
    ]:
        result = run(bank, "vocab", "create", "v", "sky", *args, ok=False)
        assert result.exit_code == 2, result.output  # a user error
        assert needle in result.stderr and "--recipe" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert bank_state(bank) == state
    made = run(bank, "vocab", "create", "v", "sky", "--recipe", f"sky={cut}").stdout
    assert "vocabulary v: sky" in made
    assert f"recipe {cut}" in run(bank, "vocab", "show", "v").stdout
    run(bank, "vocab", "create", "w", "sky")  # the plain recipe by default
    assert f"recipe {plain}" in run(bank, "vocab", "show", "w").stdout


# ---------------------------------------------------------------------- eval and the test world


def _folder_dataset(root, n=2):
    """images/ + labels/ + classes.txt for vocabulary v1 (red apple, grass)."""
    from conftest import make_image

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("red apple\ngrass\n")
    for i in range(n):
        img = make_image(40, 56, seed=i)
        labels = np.zeros((40, 56), np.uint8)
        labels[10:30, 8:30] = 1
        labels[30:, :] = 2
        labels[10, 8:30] = 255
        Image.fromarray(img).save(root / "images" / f"im{i}.png")
        Image.fromarray(labels, mode="L").save(root / "labels" / f"im{i}.png")
    return root


def test_eval_folder_dataset_end_to_end_on_tiny(cli_bank, tmp_path):
    bank, _ = cli_bank
    data = _folder_dataset(tmp_path / "data")
    report = tmp_path / "out" / "report.json"
    r = run(
        bank, "eval", "--dataset", "folder", "--root", str(data), "--vocab", "v1",
        "--report", str(report), "-q",
    )  # fmt: skip
    assert "mIoU" in r.stdout and "red apple" in r.stdout and "TEST WORLD" not in r.stdout
    data_json = json.loads(report.read_text())
    assert data_json["n_images"] == 2 and [c["name"] for c in data_json["classes"]] == [
        "background",
        "red apple",
        "grass",
    ]
    assert 0.0 <= data_json["miou"] <= 1.0
    r = run(bank, "eval", "--dataset", "folder", "--root", str(data), "--vocab", "v1",
            "--limit", "1", "--json")  # fmt: skip
    assert json.loads(r.stdout)["n_images"] == 1
    r = run(bank, "vocab", "create", "fromdata", "--from-dataset", "folder", "--root", str(data))
    assert "red apple, grass" in r.stdout


def test_eval_and_vocab_from_dataset_user_errors(cli_bank, tmp_path):
    bank, _ = cli_bank
    r = run(bank, "vocab", "create", "voc21", "--from-dataset", "voc", ok=False)
    assert r.exit_code == 2 and "not in the bank" in r.stderr and "Traceback" not in r.output
    r = run(bank, "eval", "--dataset", "voc", "--root", str(tmp_path), "--vocab", "v1", ok=False)
    assert r.exit_code == 2 and "val.txt" in r.stderr
    data = _folder_dataset(tmp_path / "d", n=1)
    r = run(bank, "eval", "--dataset", "folder", "--root", str(data), "--vocab", "v1",
            "--ablate", "bg,colour", ok=False)  # fmt: skip
    assert r.exit_code == 2 and "--ablate 'bg,colour'" in r.stderr


def test_world_eval_with_ablations_is_labelled_as_the_test_world(world):
    r = runner.invoke(
        app,
        ["--bank", str(world.bank), "--profile", "world", "eval", "--dataset", "world", "--root",
         str(world.data), "--vocab", "world", "--limit", "6", "--ablate", "bg,prefilter", "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, (r.output, r.stderr)
    assert "offline TEST WORLD" in r.stdout and "-bg" in r.stdout
    assert "no text encoder" in r.stdout
    r = runner.invoke(app, ["--profile", "tiny", "--bank", str(world.bank), "world", "bank"])
    assert r.exit_code == 2 and "profile world" in r.stderr


def test_vocab_from_dataset_pins_the_dataset_kinds(world, tmp_path):
    """--from-dataset pins each class's kind as the dataset defines it (source "dataset ...")
    and vocab show --json gives it."""
    import shutil

    from protodb.profiles import test_world

    bank = tmp_path / "bank"
    shutil.copytree(world.bank, bank)
    r = runner.invoke(app, ["--bank", str(bank), "vocab", "create", "w2", "--from-dataset=world"])
    assert r.exit_code == 0, (r.output, r.stderr)
    r = runner.invoke(app, ["--bank", str(bank), "vocab", "show", "w2", "--json"])
    shown = json.loads(r.stdout)["classes"]
    kind = test_world().class_kind
    assert [(c["kind"], c["kind_source"]) for c in shown] == [
        (kind(c["name"]), "dataset world") for c in shown
    ]
    assert {c["kind"] for c in shown} == {"stuff", "thing"}


def _world(world, *args):
    r = runner.invoke(app, ["--bank", str(world.bank), "--profile", "world", *args])
    assert r.exit_code == 0, (r.output, r.stderr)
    return r


def test_world_eval_ablate_all_prints_every_row_bg_by_the_papers_threshold(world, tmp_path):
    """Must show (issue 27): bg, instances, parts, prefilter (its skip line: no CLIP) and stuff;
    bg by the fg threshold 0.72, recorded in the report."""
    base = ["eval", "--dataset", "world", "--root", str(world.data), "--vocab", "world",
            "--limit", "1", "-q"]  # fmt: skip
    report = tmp_path / "r.json"
    r = _world(world, *base, "--ablate", "all", "--report", str(report))
    rows = [ln.split()[0] for ln in r.stdout.splitlines() if ln.startswith("  -")]
    assert rows == ["-bg", "-instances", "-parts", "-prefilter", "-stuff"]
    assert "query: windows on, pre-filter off" in r.stdout
    lines = r.stdout.splitlines()
    skip = lines[lines.index(next(ln for ln in lines if ln.startswith("  -prefilter"))) + 1]
    assert "skipped" in skip and "no text encoder" in skip and "--prefilter" in skip
    assert "pre-filter off (profile world default" in r.stderr
    assert "best fg score <= 0.72" in r.stdout
    data = json.loads(report.read_text())
    by_name = {a["name"]: a for a in data["ablations"]}
    assert list(by_name) == ["bg", "instances", "parts", "prefilter", "stuff"]
    assert by_name["bg"]["config"]["background"] is False
    assert by_name["bg"]["config"]["bg_threshold"] == 0.72
    assert by_name["prefilter"]["miou"] is None and by_name["stuff"]["miou"] is not None
    r = _world(world, *base, "--ablate", "bg", "--bg-threshold", "0.5", "--json")
    assert json.loads(r.stdout)["ablations"][0]["config"]["bg_threshold"] == 0.5
    r = runner.invoke(app, ["--bank", str(world.bank), "--profile", "world", *base,
                            "--bg-threshold", "2"])  # fmt: skip
    assert r.exit_code == 2 and "--bg-threshold 2.0 must be in [-1, 1]" in r.stderr
    assert "Traceback" not in r.output


def test_world_eval_and_segment_share_the_query_options(world, tmp_path):
    """`eval` takes segment's query flags and defaults, and records the config it ran with."""
    from dataclasses import asdict

    from protodb.evaluation.datasets import open_dataset
    from protodb.evaluation.evaluate import evaluate

    base = ["eval", "--dataset", "world", "--root", str(world.data), "--vocab", "world",
            "--limit", "2", "--json"]  # fmt: skip
    r = _world(world, *base)
    default = json.loads(json.dumps(asdict(world.db.default_query_config())))
    assert json.loads(r.stdout)["config"] == default
    flags = ["--no-windows", "--no-stuff-filter", "--pamr", "--eta", "3", "--no-prefilter"]
    config = json.loads(_world(world, *base, *flags).stdout)["config"]
    assert (config["windows"], config["stuff_filter"], config["pamr"]) == (False, False, True)
    assert (config["eta"], config["prefilter"]) == (3, False)
    ds = open_dataset("world", world.data, limit=2)
    seen = {}
    evaluate(
        world.db, "world", ds, progress=False, on_image=lambda s, lab: seen.update({s.id: lab})
    )
    out = tmp_path / "seg"
    _world(world, "segment", *[str(s.image) for s in ds.samples], "--vocab", "world", "--out",
           str(out), "-q")  # fmt: skip
    for s in ds.samples:
        assert np.asarray(Image.open(out / f"{s.image.stem}.png")).tobytes() == seen[s.id].tobytes()


def test_add_generation_options(tmp_path):
    """--seed (repeatable), --stuff, --from, --steps, --guidance, --template, --extractor."""
    names = tmp_path / "classes.txt"
    names.write_text("glaze\n\n")
    bank = tmp_path / "bank"
    out = run(
        bank, "add", "--from", str(names), "--n", "1", "--seed", "0", "--seed", "2", "--stuff",
        "--steps", "2", "--guidance", "5", "--template", "a photo of {}", "--extractor", "clip",
        "--json",
    )  # fmt: skip
    rows = json.loads(out.stdout)
    assert [(r["seed"], r["kind"], r["kind_source"]) for r in rows] == [
        (0, "stuff", "user"),
        (2, "stuff", "user"),
    ]
    assert all(r["built"][0].startswith("clip-") for r in rows)
    bad = run(bank, "add", "x", "--mask-source", "cutler", ok=False)
    assert bad.exit_code != 0 and "unknown mask source 'cutler'" in bad.stderr
    assert "Traceback" not in bad.output


def test_an_unexpected_error_is_one_line_naming_its_crash_log(tmp_path):
    """The last line of defence: a bank whose table manifest was overwritten makes Lance raise
    an error protodb does not expect; the command says it is a bug in one line, names the log
    holding the traceback, and exits 1. --debug shows the traceback itself."""
    import os
    import subprocess
    import sys

    bank = tmp_path / "bank"
    assert run(bank, "--profile", "world", "add", "red disc", "--n", "2", "-q").exit_code == 0
    for manifest in (bank / "classes.lance" / "_versions").glob("*.manifest"):
        manifest.write_bytes(b"garbage\n")
    env = {**os.environ, "PROTODB_LOG_DIR": str(tmp_path / "logs")}
    env.pop("PROTODB_DEBUG", None)
    cmd = [sys.executable, "-m", "protodb.cli.app", "--bank", str(bank), "ls"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error (a bug in protodb): ")
    (log,) = (tmp_path / "logs").iterdir()
    assert str(log) in lines[0] and "Traceback" in log.read_text()
    r = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "sky", "--n", "2", "--guidance", "nan"], "guidance=nan must be from 1 to 100"),
        (["add", "sky", "--n", "2", "--guidance", "inf"], "guidance=inf must be from 1 to 100"),
        (["add", "sky", "--n", "2", "--template", "A {} {x}"], "no other braces"),
        (["add", "sky", "--n", "2", "--template", "A {} }"], "no other braces"),
        (["add", "sky", "--n", "2", "--seed", str(2**64)], "must be from 0 to 2**63 - 1"),
        (["gc", "--older-than", "nan"], "--older-than nan must be from 0 to 1e6 hours"),
    ],
)
def test_numeric_and_template_options_are_checked_and_touch_no_bank(tmp_path, args, message):
    from protodb.bank.store import open_bank

    bank = tmp_path / "bank"
    run(bank, "--profile", "world", "add", "red disc", "--n", "2", "-q")
    before = open_bank(str(bank), create=False).versions()
    r = run(bank, "--profile", "world", *args, ok=False)
    assert r.exit_code == 2 and message in r.stderr
    assert [ln for ln in r.stderr.splitlines() if not ln.startswith("profile ")] == [
        f"error: {r.stderr.split('error: ', 1)[1].strip()}"
    ]
    assert open_bank(str(bank), create=False).versions() == before


def test_output_paths_folder_or_file(cli_bank, rgb_image, tmp_path):
    bank, _ = cli_bank
    folder = tmp_path / "pics"
    folder.mkdir()
    r = run(bank, "explain", str(rgb_image), "--vocab", "v1", "--at", "3,3", "--out", str(folder))
    assert (folder / f"{rgb_image.stem}_explain.png").exists(), r.output
    r = run(bank, "sheet", "--out", str(folder))
    assert (folder / "sheet.png").exists()
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    r = run(bank, "segment", str(rgb_image), "--vocab", "v1", "--out", str(a_file), ok=False)
    assert r.exit_code == 2 and "is a file; give a folder" in r.stderr
    assert a_file.read_text() == "x"


def test_segment_coco_file_and_bad_coco_paths(cli_bank, rgb_image, tmp_path):
    bank, _ = cli_bank
    out = tmp_path / "o"
    for bad, needle in (
        (tmp_path / "nowhere" / "run.json", "is in a folder that does not exist"),
        (tmp_path, "is a folder; give a file name"),
    ):
        args = ("segment", str(rgb_image), "--vocab", "v1", "--out", str(out), "--coco", str(bad))
        r = run(bank, *args, "-q", ok=False)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.exit_code == 2 and len(errors) == 1
        assert errors[0].startswith(f"error: --coco {str(bad)!r} {needle}")
        assert "Traceback" not in r.output + r.stderr and not out.exists()
    coco = tmp_path / "run.json"
    run(bank, "segment", str(rgb_image), "--vocab", "v1", "--out", str(out), "--coco", str(coco))
    data = json.loads(coco.read_text())
    assert [i["file_name"] for i in data["images"]] == [rgb_image.name]
    assert [c["name"] for c in data["categories"]] == ["red apple", "grass"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["add", "--n", "abc", "x"], ("protodb add", "--n", "abc", "--help")),
        (["add", "--nope", "x"], ("protodb add", "--nope")),
        (["segment"], ("protodb segment", "paths")),
        (["bogus"], ("protodb:", "bogus")),
        (["vocab", "nope"], ("protodb vocab", "nope")),
        (["--profile"], ("--profile",)),
        (["world", "report", "--n", "0"], ("protodb world report", "--n")),
    ],
)
def test_usage_errors_are_one_line(tmp_path, args, needles):
    bank = tmp_path / "bank"
    result = runner.invoke(app, ["--bank", str(bank), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output and not bank.exists()
