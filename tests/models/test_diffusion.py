"""The tokenizer, the tiny SD pipeline and the scheduler (protodb.models.diffusion)."""

import pytest
import torch

from protodb.models.diffusion import clip_bpe, load_sd, sd_scheduler, tiny_tokenizer
from protodb.models.loading import TINY


def test_clip_bpe_sizes():
    vocab, merges = clip_bpe()
    assert len(vocab) == 49408
    assert len(merges) == 48894
    assert vocab["<|startoftext|>"] == 49406
    assert vocab["<|endoftext|>"] == 49407


@pytest.mark.parametrize(
    "text",
    [
        "A good picture of a red apple",
        "a good dog",
        "Hello, World!! 123",
        "o'neil's  café",
        "hot-dog stand",
        "ÜBER straße",
    ],
)
def test_tiny_tokenizer_matches_open_clip(text):
    import open_clip

    ours = tiny_tokenizer()(text).input_ids
    ref = open_clip.tokenizer.tokenize([text])[0].tolist()
    ref = ref[: ref.index(49407) + 1]  # open_clip pads with zeros after end-of-text
    assert ours == ref


def test_tiny_tokenizer_context_length():
    assert tiny_tokenizer().model_max_length == 77


def test_tiny_sd_pipeline_structure():
    pipe = load_sd(TINY, None, "cpu", "float32", "sigma_min")
    assert pipe.vae_scale_factor == 2
    assert pipe.unet.config.sample_size == 32
    assert pipe.unet.dtype == torch.float32
    attn2 = [n for n in pipe.unet.attn_processors if n.endswith("attn2.processor")]
    # one cross-attention per down block, one in the mid block, two per up block
    assert len(attn2) == 7
    assert pipe.safety_checker is None
    assert pipe.scheduler.config.final_sigmas_type == "sigma_min"
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++"


def test_sd_scheduler_timesteps():
    sched = sd_scheduler()
    sched.set_timesteps(30)
    ts = sched.timesteps.tolist()
    assert ts[0] == 999 and ts[1] == 966 and ts[-1] == 33
    assert len(ts) == 30
    assert sd_scheduler("zero").config.final_sigmas_type == "zero"


def test_sd_pipelines_of_one_model_share_modules_whatever_the_scheduler():
    """The generator (any final_sigmas_type) and the sd extractor hold one copy of the weights."""
    from protodb.extractors.factory import default_extractor_config, get_extractor
    from protodb.synthesis.generate import default_generator_config

    base = load_sd(TINY, None, "cpu", "float32", "sigma_min")
    zero = load_sd(TINY, None, "cpu", "float32", "zero")
    assert zero is load_sd(TINY, None, "cpu", "float32", "zero") and zero is not base
    assert zero.scheduler.config.final_sigmas_type == "zero"
    assert base.scheduler.config.final_sigmas_type == "sigma_min"
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        assert getattr(zero, name) is getattr(base, name)
    gen = default_generator_config("tiny")
    ext = get_extractor(default_extractor_config("tiny", "sd"), "cpu")
    pipe = load_sd(gen.model, gen.revision, "cpu", "float32", gen.final_sigmas_type)
    assert ext.pipe.unet is pipe.unet and ext.pipe.vae is pipe.vae


def test_pyproject_requires_the_diffusers_that_reads_dtype():
    """Issue 27 item 7: ``from_pretrained(..., dtype=)`` is read by diffusers 0.40 and later
    (earlier releases drop it and load float32); the floor must be that release."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    floor = re.search(r'"diffusers>=([0-9.]+)"', text)
    assert floor, "pyproject.toml names no diffusers floor"
    assert tuple(int(x) for x in floor.group(1).split(".")[:2]) >= (0, 40)


def test_a_pipeline_from_a_local_directory_has_the_dtype_asked_for(tmp_path):
    load_sd(TINY, None, "cpu", "float32", "sigma_min").save_pretrained(tmp_path / "sd")
    pipe = load_sd(str(tmp_path / "sd"), None, "cpu", "float16", "sigma_min")
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.float16}
    pipe = load_sd(str(tmp_path / "sd"), None, "cpu", "float32", "sigma_min")
    assert pipe.unet.dtype == torch.float32
