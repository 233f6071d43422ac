"""The learned world's training code: scenes, a few real training steps, the saved pipeline
loaded through protodb's local-directory model loading, and the attention measurement
(protodb.world.learned). The full training run is not part of CI; this keeps it from rotting."""

import json

import numpy as np
import pytest

from protodb.world.classes import STUFF, THINGS
from protodb.world.learned.scenes import TEMPLATE, draw_training_scene, training_batch

THING_NAMES = {c.name for c in THINGS}
STUFF_NAMES = {c.name for c in STUFF}


def test_training_scenes_name_every_entity_and_mask_it():
    seen_template = False
    for k in range(40):
        s = draw_training_scene(np.random.default_rng([5, k]))
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        things = [n for n in s.masks if n in THING_NAMES]
        stuffs = [n for n in s.masks if n in STUFF_NAMES]
        assert 1 <= len(things) <= 3 and 1 <= len(stuffs) <= 2
        if s.caption.startswith("A good picture of a "):
            seen_template = True
            assert s.caption == TEMPLATE.format(things[0]) and len(things) == len(stuffs) == 1
        else:
            assert all(n in s.caption for n in s.masks)
        cover = np.sum([m.astype(int) for m in s.masks.values()], axis=0)
        assert cover.max() == 1  # visible parts never overlap; a thing hides what is behind
    assert seen_template


def test_training_batches_depend_only_on_seed_and_step():
    a = training_batch(3, 7, 2)
    b = training_batch(3, 7, 2)
    c = training_batch(3, 8, 2)
    same = [
        np.array_equal(x.image, y.image) and x.caption == y.caption
        for x, y in zip(a, b, strict=True)
    ]
    assert len(a) == len(b) == 2 and all(same)
    assert not np.array_equal(a[0].image, c[0].image)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from protodb.world.learned.train import TrainConfig, train

    out = tmp_path_factory.mktemp("world-model")
    cfg = TrainConfig(
        vae_steps=3, unet_steps=3, batch=2, unet_minutes=1.0, save_minutes=0.0, pool=6
    )
    return train(cfg, out)


def test_a_few_training_steps_write_a_diffusers_pipeline(trained):
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (trained / part).is_dir(), part
    assert list((trained / "unet").glob("*.safetensors"))
    cfg = json.loads((trained / "train_config.json").read_text())
    assert cfg["min_snr_gamma"] == 5.0 and cfg["caption_dropout"] == 0.1
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} == {"vae", "pool", "unet", "ground"}
    assert all(np.isfinite(r["loss"]) for r in log)
    vae_cfg = json.loads((trained / "vae" / "config.json").read_text())
    assert vae_cfg["scaling_factor"] > 0 and vae_cfg["scaling_factor"] != 0.18215


def test_the_trained_pipeline_loads_and_generates_through_protodb(trained):
    from protodb.synthesis.generate import GeneratorConfig, generate_sd

    cfg = GeneratorConfig(model=str(trained), steps=2, size=64, unet_batch=1, guidance=3.0)
    (s,) = generate_sd("red disc", "red disc", cfg, 0, [0])
    assert s.image.shape == (64, 64, 3)
    assert s.attribution.shape == (16, 16) and s.attribution.max() > 0


def test_attention_iou_is_measured_for_right_and_wrong_classes(trained):
    from protodb.world.learned.evaluate import attention_iou

    r = attention_iou(str(trained), scenes=1, timesteps=(200,))
    assert r.pairs >= 2 and 0 <= r.right <= 1 and 0 <= r.wrong <= 1
    assert set(r.per_class) <= THING_NAMES


def test_the_detector_reads_the_procedural_world_right_and_specifically():
    from protodb.world.draw import draw_support
    from protodb.world.learned.detect import check_on_procedural, detect

    report = check_on_procedural(n=8, seed=2)
    assert min(report.colour_and_shape.values()) >= 0.95
    rng = np.random.default_rng(4)
    wrong = 0
    for cls in THINGS:
        for _ in range(4):
            image = draw_support(cls, 64, rng)[0]
            for other in THINGS:
                if other is not cls:
                    d = detect(image, other.name)
                    wrong += d.colour and d.shape == other.shape
    assert wrong <= 2  # of 48


def test_learned_samples_are_scored_by_the_detector(trained):
    from protodb.world.learned.detect import sample_learned

    report = sample_learned(str(trained), n=1, steps=2)
    assert set(report.colour) == THING_NAMES and report.n == 1
    assert all(0 <= v <= 1 for v in report.colour_and_shape.values())


def test_shipping_records_hashes_and_a_changed_file_is_refused(trained, tmp_path):
    import safetensors

    from protodb.errors import ProtodbError
    from protodb.world.learned.weights import HASHES, verify
    from protodb.world.learned.weights import ship as ship_weights

    dst = ship_weights(trained, tmp_path / "model")
    hashes = tmp_path / HASHES
    assert verify(dst, hashes) == dst
    with safetensors.safe_open(dst / "unet" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert str(f.get_tensor(next(iter(f.keys()))).dtype) == "torch.float16"
    blob = dst / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(ProtodbError, match=r"differ from their recorded sha256 \(vae/"):
        verify(dst, hashes)
    with pytest.raises(ProtodbError, match="weights are not in this installation"):
        verify(tmp_path / "nowhere", hashes)


def test_add_model_dir_serves_the_generator_and_the_sd_extractor(trained, tmp_path):
    """`add --model DIR` reaches the sd extractor too (it used to ask the hub for SD 1.5)."""
    import protodb

    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    (res,) = db.add(
        ["red disc"], n=2, extractors=["sd"], model=str(trained), steps=2, progress=False
    )
    assert res.status == "added"
    (s,) = db.show("red disc").sets
    config = json.loads(db.bank.sets().to_pylist()[0]["extractor_config"])
    assert config["name"] == "sd" and config["model"] == str(trained) and config["weights"] is None
    assert s["dim"] > 0


def test_entity_tokens_are_found_in_every_caption_form():
    from protodb.models.diffusion import tiny_tokenizer
    from protodb.world.learned.train import entity_token_positions

    tok = tiny_tokenizer()
    caption = "a red disc and a yellow star on grass and sky"
    disc = entity_token_positions(tok, caption, "red disc")
    star = entity_token_positions(tok, caption, "yellow star")
    sky = entity_token_positions(tok, caption, "sky")
    ids = tok(caption).input_ids
    assert [tok.decode([ids[i]]).strip() for i in disc] == ["red", "disc"]
    assert [tok.decode([ids[i]]).strip() for i in star] == ["yellow", "star"]
    assert [tok.decode([ids[i]]).strip() for i in sky] == ["sky"]
    assert entity_token_positions(tok, caption, "water") == []
    # the template protodb samples with: the same positions protodb's capture reads
    from protodb.synthesis.attention import class_token_positions

    assert entity_token_positions(tok, TEMPLATE.format("red disc"), "red disc") == (
        class_token_positions(tok, TEMPLATE, "red disc")
    )


def test_grounding_loss_is_low_when_attention_lands_on_the_mask():
    import torch

    from protodb.world.learned.train import grounding_loss

    side, heads = 4, 2
    mask = torch.zeros(1, 2, side, side)
    mask[0, 0, :2] = 1.0  # entity 0: top half; entity 1: bottom half
    mask[0, 1, 2:] = 1.0
    tokens = torch.zeros(1, 2, 77)
    tokens[0, 0, 5] = 1.0
    tokens[0, 1, 7] = 1.0

    def probs(right: bool) -> torch.Tensor:
        p = torch.full((heads, side * side, 77), 1e-4)
        top = torch.arange(side * side) < side * side // 2
        p[:, top, 5 if right else 7] = 1.0
        p[:, ~top, 7 if right else 5] = 1.0
        return p / p.sum(-1, keepdim=True)

    good = grounding_loss([(probs(True), heads)], mask, tokens)
    bad = grounding_loss([(probs(False), heads)], mask, tokens)
    assert float(good) < 0.05 < 1.0 < float(bad)
    # nothing named (caption dropped): no loss
    assert float(grounding_loss([(probs(False), heads)], mask, tokens * 0)) == 0.0


def test_a_run_resumes_from_a_saved_one(trained, tmp_path):
    """--resume: the saved VAE (and its scaling factor) and text encoder are kept, the UNet goes
    on from the saved weights; template captions for scenes of several things."""
    from protodb.world.learned.train import TrainConfig, train

    cfg = TrainConfig(
        unet_steps=2, batch=2, pool=4, template_share=1.0, resume=str(trained), save_minutes=0.0
    )
    out = train(cfg, tmp_path / "more")
    for part in ("vae", "text_encoder"):
        a = sorted((trained / part).glob("*.safetensors"))[0].read_bytes()
        b = sorted((out / part).glob("*.safetensors"))[0].read_bytes()
        assert a == b, part
    assert (out / "resumed_config.json").read_text() == (trained / "train_config.json").read_text()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert "vae" not in {r["stage"] for r in log}
