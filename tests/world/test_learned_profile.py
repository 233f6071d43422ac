"""The world-learned profile's configuration (protodb.world.learned.profile): the real SD
generator and sd extractor on the shipped learned model, by its location-independent name."""

import pytest

from protodb.errors import ProtodbError
from protodb.extractors.factory import default_extractor_config, default_extractor_names
from protodb.settings import resolve_profile
from protodb.synthesis.generate import default_generator_config


def test_profile_uses_the_real_generator_and_extractor_on_the_learned_model():
    assert resolve_profile("world-learned") == "world-learned"
    gen = default_generator_config("world-learned")
    assert (gen.name, gen.model, gen.size, gen.negative_prompt) == (
        "sd",
        "protodb:world-learned",
        64,
        "",
    )
    assert default_extractor_names("world-learned") == ["sd"]
    sd = default_extractor_config("world-learned", "sd")
    assert (sd.name, sd.model, sd.input_size) == ("sd", "protodb:world-learned", 64)
    assert default_extractor_config("world-learned", "world").name == "world"  # the ensemble
    with pytest.raises(ProtodbError, match="'dino' is not available on profile 'world-learned'"):
        default_extractor_config("world-learned", "dino")
    # the oracle world is untouched
    assert default_generator_config("world").name == "world"
