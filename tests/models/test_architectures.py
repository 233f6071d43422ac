"""Every real-profile model, built from its shipped architecture config with no weights, has
the architecture its published weights were trained with (protodb.models.architectures)."""

import pytest

from protodb.errors import ProtodbError
from protodb.models.architectures import (
    architectures,
    build,
    check_architecture,
    facts,
    mismatches,
)


@pytest.mark.parametrize("kind", sorted(architectures()))
def test_real_profile_model_has_the_architecture_its_weights_need(kind):
    module = build(kind)
    assert mismatches(kind, module) == {}
    assert set(facts(kind, module)) == set(architectures()[kind].expected)
    check_architecture(kind, module, architectures()[kind].model)


def test_the_published_facts():
    a = architectures()
    assert a["clip"].model == "ViT-B-16-quickgelu/openai"
    assert a["clip"].expected["activation"] == "QuickGELU"
    assert a["dino"].expected["patch"] == 8
    assert a["sd-unet"].expected["cross_attention_dim"] == 768
    assert a["sd-text-encoder"].expected["activation"] == "quick_gelu"


def test_a_changed_default_is_caught():
    """Negative control: open_clip's plain ViT-B-16 builds nn.GELU, which OpenAI's weights were
    not trained with; the check names the fact."""
    import open_clip

    gelu = open_clip.create_model("ViT-B-16", pretrained=None)
    bad = mismatches("clip", gelu)
    assert bad["activation"] == ("GELU", "QuickGELU")
    with pytest.raises(ProtodbError, match="activation is 'GELU', its weights need 'QuickGELU'"):
        check_architecture("clip", gelu, "ViT-B-16/openai")


def test_unknown_architecture():
    with pytest.raises(ProtodbError, match="unknown architecture 'no-such-model'; known: sd-unet"):
        build("no-such-model")


@pytest.mark.slow
def test_random_sd_pipeline_has_the_real_architectures():
    """The benchmarks' SD 1.5 with random weights (about 1 B parameters; slow on a CPU)."""
    from protodb.models.architectures import mismatches
    from protodb.models.diffusion import random_sd_pipeline

    pipe = random_sd_pipeline(0)
    for kind, module in (
        ("sd-unet", pipe.unet),
        ("sd-vae", pipe.vae),
        ("sd-text-encoder", pipe.text_encoder),
    ):
        assert mismatches(kind, module) == {}, kind
