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
