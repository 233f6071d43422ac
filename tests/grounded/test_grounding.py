"""The grounding head: shapes, save / load, that training fits, features of the real (tiny)
UNet, and `protodb grounding train` + `synth --masks grounding` on the tiny profile."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from protodb.cli.app import app
from protodb.grounded.grounding import (
    Example,
    Features,
    GroundingHead,
    HeadConfig,
    new_head,
    train_head,
    unet_features,
)

runner = CliRunner()


def fake_example(seed: int) -> Example:
    """Features whose first fine channel says where the entity is (a learnable target)."""
    g = torch.Generator().manual_seed(seed)
    fine = torch.randn(8, 16, 16, generator=g)
    coarse = torch.randn(16, 8, 8, generator=g)
    text = torch.randn(77, 12, generator=g)
    mask = (fine[0] > 0.3).numpy()
    return Example(Features([coarse, fine], text), [[3, 4]], mask[None], ["x"])


def test_forward_shape_and_save_load_round_trip(tmp_path):
    head = GroundingHead(HeadConfig((16, 8), 12, dim=8), {"seen": ["x"]})
    ex = fake_example(0)
    logits = head(ex.feats.scales, ex.feats.text[[3, 4]].mean(0))
    assert logits.shape == (16, 16)
    head.save(tmp_path / "h")
    back = GroundingHead.load(tmp_path / "h")
    assert back.id == head.id and back.info == {"seen": ["x"]}
    prob = back.predict(ex.feats, ex.positions, (32, 32))
    assert prob.shape == (1, 32, 32) and prob.min() >= 0 and prob.max() <= 1
    np.testing.assert_allclose(prob, head.predict(ex.feats, ex.positions, (32, 32)))


def test_training_fits_a_learnable_target():
    examples = [fake_example(s) for s in range(4)]
    head = new_head(examples[0], dim=8)
    losses = train_head(head, examples, steps=150, lr=1e-2)
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:20])


def test_features_of_the_tiny_unet_are_multi_scale_and_deterministic():
    from protodb.grounded.sampling import load_pipeline
    from protodb.synthesis.generate import default_generator_config

    pipe = load_pipeline(default_generator_config("tiny"), "cpu")
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    a = unet_features(pipe, image, "a red apple on grass")
    b = unet_features(pipe, image, "a red apple on grass")
    c = unet_features(pipe, image, "a dog")
    assert len(a.scales) == len(pipe.unet.up_blocks) >= 2
    assert a.scales[-1].shape[-1] >= a.scales[0].shape[-1]  # coarse to fine
    assert a.text.shape[0] == 77
    assert all(torch.equal(x, y) for x, y in zip(a.scales, b.scales, strict=True))
    assert not torch.equal(a.scales[-1], c.scales[-1])  # the prompt conditions them
    from protodb.grounded.compose import parse_prompt

    head = new_head(Example(a, [], np.zeros((0, 1, 1), bool)), dim=8)
    comp = parse_prompt("a red apple on grass", ["red apple", "grass"])
    m = head.entity_masks(image, comp, default_generator_config("tiny"))
    assert m.source == "grounding" and m.masks.shape == (2, 64, 64) and m.labels == [1, 2]
    assert not (m.masks[0] & m.masks[1]).any()


def cli(bank, *args):
    return runner.invoke(app, ["--bank", str(bank), "--profile", "tiny", *args])


@pytest.mark.slow  # about 30 s: two images generated for training, one with the head
def test_train_then_synth_with_the_head(tiny_bank, tmp_path):
    seen = tmp_path / "seen.txt"
    seen.write_text("red apple\ngrass\n")
    res = cli(
        tiny_bank.path,
        "grounding",
        "train",
        "--vocab",
        "v1",
        "--classes",
        str(seen),
        "--out",
        str(tmp_path / "head"),
        "--per-class",
        "1",
        "--steps",
        "3",
        "--json",
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["images"] == 2 and rep["steps"] == 3
    cfg = json.loads((tmp_path / "head" / "config.json").read_text())
    assert (
        cfg["info"]["seen"] == ["red apple", "grass"] and "Mask R-CNN" in cfg["info"]["mask_note"]
    )
    assert (tmp_path / "head" / "model.safetensors").exists()
    res = cli(
        tiny_bank.path,
        "synth",
        "--vocab",
        "v1",
        "--prompt",
        "a red apple on grass",
        "--masks",
        "grounding",
        "--grounding",
        str(tmp_path / "head"),
        "--out",
        str(tmp_path / "ds"),
        "-q",
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(next((tmp_path / "ds" / "meta").glob("*.json")).read_text())
    assert rec["masks"] == "grounding" and rec["grounding"] == rep["head_id"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["grounding", "train", "--vocab", "v1", "--classes", "missing.txt", "--out", "h"],
            "is not a file",
        ),
        (
            [
                "synth",
                "--vocab",
                "v1",
                "--prompt",
                "grass",
                "--masks",
                "grounding",
                "--grounding",
                "nohead",
                "--out",
                "d",
            ],
            "holds no grounding head",
        ),
    ],
)
def test_bad_input_is_one_line(tiny_bank, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    res = cli(tiny_bank.path, *args)
    lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("profile tiny:")]
    assert res.exit_code != 0 and len(lines) == 1 and message in lines[0], res.stderr


def test_a_seen_class_outside_the_vocabulary_is_refused(tiny_bank, tmp_path):
    seen = tmp_path / "seen.txt"
    seen.write_text("red apple\nunicorn\n")
    res = cli(
        tiny_bank.path,
        "grounding",
        "train",
        "--vocab",
        "v1",
        "--classes",
        str(seen),
        "--out",
        str(tmp_path / "head"),
    )
    assert res.exit_code != 0 and "seen class 'unicorn' is not in vocabulary 'v1'" in res.stderr


def test_the_heads_seen_unseen_scores_give_the_zs3_figures():
    """score_on_scenes' result: means over the seen classes scored and the rest, and their
    harmonic mean, by the function `protodb eval --unseen` uses (protodb.evaluation.zs3)."""
    from protodb.grounded.train import SeenUnseen

    ious = {"red disc": 0.6, "sky": 0.8, "water": 0.2, "orange triangle": 0.4}
    su = SeenUnseen(ious, seen=["red disc", "sky", "sand"])  # sand: seen, never drawn
    z = su.zs3()
    assert z.seen == ["red disc", "sky"] and z.unseen == ["water", "orange triangle"]
    assert z.miou_seen == pytest.approx(0.7) and z.miou_unseen == pytest.approx(0.3)
    assert z.hiou == pytest.approx(2 * 0.7 * 0.3 / 1.0)
    assert su.mean(True) == z.miou_seen and su.mean(False) == z.miou_unseen
    assert SeenUnseen({"sky": 0.5}, ["sky"]).zs3().hiou is None  # no unseen class scored
