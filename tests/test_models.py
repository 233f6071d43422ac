import hashlib
import subprocess
import sys

import pytest
import torch

from protodb.errors import ModelNotFoundError
from protodb.models.diffusion import clip_bpe, load_sd, sd_scheduler, tiny_tokenizer
from protodb.models.loading import TINY
from protodb.models.openclip import load_clip
from protodb.models.vision import load_dinov2


def _checksum(module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


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


def test_tiny_dinov2_is_deterministic_and_keeps_global_rng():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = load_dinov2.__wrapped__(TINY, None, "cpu")
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # the global seed must not matter
    b = load_dinov2.__wrapped__(TINY, None, "cpu")
    assert _checksum(a) == _checksum(b)
    assert not a.training


def test_load_dinov2_is_cached_per_process():
    assert load_dinov2(TINY, None, "cpu") is load_dinov2(TINY, None, "cpu")


def test_tiny_weights_identical_across_processes():
    code = (
        "import hashlib\n"
        "from protodb.models.vision import load_dinov2\n"
        "h = hashlib.sha256()\n"
        "for k, t in sorted(load_dinov2('tiny', None, 'cpu').state_dict().items()):\n"
        "    h.update(k.encode()); h.update(t.contiguous().numpy().tobytes())\n"
        "print(h.hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == _checksum(load_dinov2(TINY, None, "cpu"))


def test_tiny_clip_is_deterministic():
    a = load_clip.__wrapped__(TINY, None, "cpu")
    b = load_clip.__wrapped__(TINY, None, "cpu")
    assert _checksum(a) == _checksum(b)
    img = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        assert a.encode_image(img).shape == (1, 32)


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


@pytest.mark.parametrize(
    ("loader", "args", "named"),
    [
        (load_dinov2, ("/nonexistent/protodb-dinov2", None, "cpu"), "DINOv2"),
        (load_clip, ("no-such-arch", "openai", "cpu"), "CLIP"),
    ],
)
def test_missing_model_raises_model_not_found(loader, args, named):
    with pytest.raises(ModelNotFoundError, match=named) as err:
        loader(*args)
    assert args[0] in str(err.value)
    assert "--profile tiny" in str(err.value)
    assert err.value.exit_code == 3


def test_missing_model_message_mentions_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set"):
        load_dinov2("/nonexistent/protodb-dinov2-offline", None, "cpu")
