import sys

import pytest
import torch
import torch.nn.functional as F

from protodb.errors import ProtodbError
from protodb.models.diffusion import load_sd, tiny_tokenizer
from protodb.models.loading import TINY
from protodb.synthesis.attention import (
    AttributionStore,
    CaptureCrossAttnProcessor,
    capture_cross_attention,
    class_token_positions,
)
from protodb.synthesis.generate import DEFAULT_TEMPLATE


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def pipe():
    return load_sd(TINY, None, "cpu", "float32", "sigma_min")


# --------------------------------------------------------------------------- token positions


def test_positions_red_apple(tokenizer):
    assert class_token_positions(tokenizer, DEFAULT_TEMPLATE, "red apple") == [6, 7]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a good dog", [6, 7, 8]), ("picture frame", [6, 7]), ("of", [6]), ("A", [6])],
)
def test_positions_of_class_starting_with_template_word(tokenizer, name, expected):
    positions = class_token_positions(tokenizer, DEFAULT_TEMPLATE, name)
    assert positions == expected
    ids = tokenizer(DEFAULT_TEMPLATE.format(name)).input_ids
    own = tokenizer(name, add_special_tokens=False).input_ids
    assert [ids[p] for p in positions] == own
    # the first occurrence of the class's first token is inside the template, not at 6
    assert ids.index(own[0]) < 6


def test_positions_template_at_start(tokenizer):
    assert class_token_positions(tokenizer, "{} in the wild", "red apple") == [1, 2]


def test_positions_reject_bad_template(tokenizer):
    with pytest.raises(ProtodbError, match="exactly one"):
        class_token_positions(tokenizer, "a photo", "dog")
    with pytest.raises(ProtodbError, match="exactly one"):
        class_token_positions(tokenizer, "{} and {}", "dog")


def test_positions_reject_merging_template(tokenizer):
    with pytest.raises(ProtodbError, match="merges with class 'dog'"):
        class_token_positions(tokenizer, "photo of a{}", "dog")


def test_positions_reject_too_long_class(tokenizer):
    with pytest.raises(ProtodbError, match="80 tokens"):
        class_token_positions(tokenizer, DEFAULT_TEMPLATE, "word " * 80)


def test_positions_longest_class_that_fits(tokenizer):
    # 76 = last position before end-of-text; the prefix takes 1 + 5 positions
    positions = class_token_positions(tokenizer, DEFAULT_TEMPLATE, "word " * 70)
    assert positions == list(range(6, 76))
    with pytest.raises(ProtodbError, match="1 to 70 tokens"):
        class_token_positions(tokenizer, DEFAULT_TEMPLATE, "word " * 71)


# --------------------------------------------------------------------------- AttributionStore


def _probs(b_all, heads, n, k):
    g = torch.Generator().manual_seed(0)
    return torch.rand(b_all * heads, n, k, generator=g)


def test_store_same_resolution_by_hand():
    heads, k = 2, 5
    probs = _probs(4, heads, 4, k)  # batch [uncond x2, cond x2], 2x2 latent grid
    probs[5, 0, 1] = -0.5  # cond image 0, head 1, query 0, token 1: clamped at 0
    probs[:4] = 100.0  # the unconditional half must be ignored
    store = AttributionStore([1, 3], (2, 2))
    store.add(probs, heads)
    assert store.count == heads and store.calls == 1
    maps = store.maps()
    assert maps.shape == (2, 2, 2)
    p = probs.view(4, heads, 4, k).clamp_min(0)
    for b in range(2):
        cond = p[2 + b]  # [heads, n, k]
        expected = (cond[:, :, 1].sum(0) + cond[:, :, 3].sum(0)) / heads / 2
        assert torch.allclose(maps[b].reshape(-1), expected)
    # one pixel by hand: cond image 0 is batch row 2, i.e. rows 4 (head 0) and 5 (head 1)
    tok1 = (float(probs[4, 0, 1]) + 0.0) / heads  # head 1's -0.5 is clamped to 0
    tok3 = (float(probs[4, 0, 3]) + float(probs[5, 0, 3])) / heads
    assert float(maps[0, 0, 0]) == pytest.approx((tok1 + tok3) / 2)


def test_store_sums_layers_and_upsamples_bicubic():
    heads = 2
    store = AttributionStore([0], (4, 4))
    fine = _probs(2, heads, 16, 3)  # a 4x4 layer: no resampling
    coarse = torch.zeros(2 * heads, 4, 3)  # a 2x2 layer
    coarse[2, :, 0] = torch.tensor([0.1, 0.9, 0.4, 0.2])  # cond, head 0
    coarse[3, :, 0] = torch.tensor([0.3, 0.3, 0.3, 0.3])  # cond, head 1: constant
    store.add(fine, heads)
    store.add(coarse, heads)
    assert store.count == 2 * heads and store.calls == 2
    up0 = F.interpolate(
        coarse[2, :, 0].view(1, 1, 2, 2), size=(4, 4), mode="bicubic", align_corners=False
    )[0, 0].clamp_min(0)
    up1 = torch.full((4, 4), 0.3)  # bicubic keeps a constant map constant
    expected = (fine[2:, :, 0].sum(0).view(4, 4) + up0 + up1) / (2 * heads)
    assert torch.allclose(store.maps()[0], expected, atol=1e-6)
    assert (store.maps() >= 0).all()


def test_store_columns_slice_consecutive_positions_and_index_others():
    """Consecutive token positions are read as a slice (a view: no index tensor to copy to the
    device), others by index; the values are the same either way."""
    t = torch.randn(3, 5, 9)
    view = AttributionStore([2, 3, 4], (2, 2)).columns(t)
    assert view.data_ptr() == t[..., 2:].data_ptr() and torch.equal(view, t[:, :, [2, 3, 4]])
    assert torch.equal(AttributionStore([1, 3], (2, 2)).columns(t), t[:, :, [1, 3]])
    assert torch.equal(AttributionStore([4, 3], (2, 2)).columns(t), t[:, :, [4, 3]])


def test_store_maps_before_add_raises():
    with pytest.raises(RuntimeError, match="no cross-attention"):
        AttributionStore([1], (2, 2)).maps()


# --------------------------------------------------------------------------- capture


def _unet_inputs(pipe):
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 32, 32, generator=g)
    text = torch.randn(2, 77, pipe.unet.config.cross_attention_dim, generator=g)
    return latents, torch.tensor(500), text


def test_capture_restores_processors_by_identity(pipe):
    before = dict(pipe.unet.attn_processors)
    with capture_cross_attention(pipe.unet, [6, 7], (32, 32)):
        during = pipe.unet.attn_processors
        for name, proc in during.items():
            if name.endswith("attn2.processor"):
                assert isinstance(proc, CaptureCrossAttnProcessor)
            else:
                assert proc is before[name]
    after = pipe.unet.attn_processors
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)


def test_capture_restores_processors_after_exception(pipe):
    before = dict(pipe.unet.attn_processors)
    with pytest.raises(KeyError, match="boom"), capture_cross_attention(pipe.unet, [6], (32, 32)):
        raise KeyError("boom")
    after = pipe.unet.attn_processors
    assert all(after[k] is before[k] for k in before)
    assert not any(isinstance(p, CaptureCrossAttnProcessor) for p in after.values())


def test_capture_does_not_change_the_unet_output(pipe):
    latents, t, text = _unet_inputs(pipe)
    with torch.no_grad():
        ref = pipe.unet(latents, t, encoder_hidden_states=text).sample
        with capture_cross_attention(pipe.unet, [1, 2], (32, 32)) as store:
            got = pipe.unet(latents, t, encoder_hidden_states=text).sample
    assert torch.equal(got, ref)  # the wrapped processor computes the output
    heads = [m.heads for n, m in pipe.unet.named_modules() if n.endswith("attn2")]
    assert store.calls == len(heads) == 7
    assert store.count == sum(heads)
    maps = store.maps()
    assert maps.shape == (1, 32, 32)  # conditional half of a batch of 2
    assert (maps >= 0).all() and maps.max() > 0


def test_capture_counts_every_layer_and_step(pipe):
    steps = 2
    positions = class_token_positions(pipe.tokenizer, DEFAULT_TEMPLATE, "red apple")
    with torch.inference_mode(), capture_cross_attention(pipe.unet, positions, (32, 32)) as s:
        pipe(
            prompt=["A good picture of a red apple"],
            negative_prompt=["blurry"],
            num_inference_steps=steps,
            guidance_scale=8.0,
            height=64,
            width=64,
            output_type="np",
        )
    heads = sum(m.heads for n, m in pipe.unet.named_modules() if n.endswith("attn2"))
    assert s.calls == 7 * steps
    assert s.count == heads * steps
    assert s.total.shape == (1, 2, 32, 32)  # [B, class tokens, latent grid]
    assert s.maps().shape == (1, 32, 32)


# --------------------------------------------------------------------------- memory

# Run in a fresh process: torch's CPU allocations are invisible to tracemalloc, so the resident
# set is the measure (Linux /proc, KiB). The peak of each run is VmHWM after resetting it
# (clear_refs 5; where that is refused, the process-lifetime peak ru_maxrss, still monotone).
# It is taken relative to the resident set right after the models are loaded, once a two-step
# warm-up ran (allocator pools, the solver's second-order state), with S and with 2S steps.
_PROBE = """
import json, resource, sys
import protodb.synthesis.attention as A
from protodb.synthesis.generate import default_generator_config, generate_sd
from protodb.models.diffusion import load_sd

if sys.argv[1] == "keep":  # negative control: a naive capture keeping every attention map
    kept, record = [], A.CaptureCrossAttnProcessor._record
    def keep(self, attn, x, ctx, temb):
        half = x.shape[0] // 2
        q = attn.head_to_batch_dim(attn.to_q(x[half:]))
        k = attn.head_to_batch_dim(attn.to_k(ctx[half:]))
        kept.append(attn.get_attention_scores(q, k, None))  # [B*heads, N, 77] per layer, step
        record(self, attn, x, ctx, temb)
    A.CaptureCrossAttnProcessor._record = keep
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))
def reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
def run(steps):
    cfg = default_generator_config("tiny", steps=steps, unet_batch=2)
    generate_sd("red apple", "red apple", cfg, 0, [0, 1], batch_size=2)
load_sd("tiny", None, "cpu", "float32", "sigma_min")
loaded = status("VmRSS:")
run(2)
peaks = []
for steps in (4, 8):
    fresh = reset()
    run(steps)
    peaks.append(status("VmHWM:") if fresh else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps({"loaded": loaded, "peaks": peaks}))
"""


def _generation_peaks(mode: str) -> tuple[int, int]:
    """Peak memory of generation above the loaded process (KiB) at 4 and at 8 steps."""
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["peaks"][0] - r["loaded"], r["peaks"][1] - r["loaded"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_capture_memory_is_flat_when_steps_double():
    """Must show: peak memory grows under 10% when the number of steps doubles."""
    at4, at8 = _generation_peaks("flat")
    assert at4 > 0
    assert at8 < 1.10 * at4, f"peak above the loaded process: {at4} KiB at 4 steps, {at8} at 8"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_probe_detects_kept_attention_maps():
    """The measure above can fail: keeping every step's attention map grows it by far > 10%."""
    at4, at8 = _generation_peaks("keep")
    assert at8 > 1.3 * at4


def test_store_holds_constant_bytes_over_steps(pipe):
    latents, t, text = _unet_inputs(pipe)
    with torch.inference_mode(), capture_cross_attention(pipe.unet, [6, 7], (32, 32)) as store:
        sizes = []
        for _ in range(3):
            pipe.unet(latents, t, encoder_hidden_states=text)
            sizes.append(store.nbytes())
    assert sizes == [1 * 2 * 32 * 32 * 4] * 3  # [B=1 cond image, 2 tokens, 32, 32] float32


class _ExplicitSoftmax:
    """Reference recorder for the test below: full softmax probabilities, store.add."""

    def __init__(self, store, inner):
        self.store, self.inner = store, inner

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw
    ):  # noqa: E501
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        self.store.add(attn.get_attention_scores(q, k, None), attn.heads)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def test_capture_equals_explicit_softmax_over_all_tokens(pipe):
    """The logsumexp shortcut gives the numbers a full softmax gives (REFERENCE 1.2)."""
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(4, 4, 32, 32, generator=g)
    text = torch.randn(4, 77, pipe.unet.config.cross_attention_dim, generator=g)
    t = torch.tensor(500)
    with torch.inference_mode():
        with capture_cross_attention(pipe.unet, [6, 7], (32, 32)) as got:
            pipe.unet(latents, t, encoder_hidden_states=text)
        ref = AttributionStore([6, 7], (32, 32))
        original = dict(pipe.unet.attn_processors)
        pipe.unet.set_attn_processor(
            {
                n: _ExplicitSoftmax(ref, p) if n.endswith("attn2.processor") else p
                for n, p in original.items()
            }
        )
        try:
            pipe.unet(latents, t, encoder_hidden_states=text)
        finally:
            pipe.unet.set_attn_processor(dict(original))
    assert got.calls == ref.calls == 7 and got.count == ref.count
    torch.testing.assert_close(got.maps(), ref.maps(), rtol=1e-5, atol=1e-8)
