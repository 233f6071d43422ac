"""The learned world's shipped weights: they match their recorded sha256, are float16, stay
small, and load and generate through protodb's public model loading by their shipped name
(protodb.world.learned.weights)."""

import json

from protodb.world.learned.weights import HASHES, MODEL, file_hashes, model_dir


def test_shipped_weights_match_their_recorded_hashes_and_stay_small():
    root = model_dir()
    recorded = json.loads((root.parent / HASHES).read_text())
    assert recorded["name"] == MODEL and file_hashes(root) == recorded["files"]
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 30 * 2**20
    for part in ("unet", "vae", "text_encoder"):
        assert any(
            k.startswith(f"{part}/") and k.endswith(".safetensors") for k in recorded["files"]
        )


def test_shipped_world_loads_and_generates_through_the_public_path():
    from protodb.models.diffusion import load_sd
    from protodb.synthesis.generate import GeneratorConfig, generate_sd

    pipe = load_sd(MODEL, None, "cpu", "float32", "sigma_min")
    assert pipe.unet.config.sample_size == 16 and pipe.vae_scale_factor == 4
    cfg = GeneratorConfig(
        model=MODEL, steps=4, size=64, guidance=4.0, negative_prompt="", unet_batch=2
    )
    (s,) = generate_sd("red disc", "red disc", cfg, 0, [0])
    assert s.image.shape == (64, 64, 3) and s.attribution.shape == (16, 16)
