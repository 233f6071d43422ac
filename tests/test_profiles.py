"""Profiles as data (protodb.profiles): every registered profile resolves, each field is what
the stages use, an unknown name lists the known ones."""

from __future__ import annotations

import pytest

from protodb.errors import ProtodbError
from protodb.extractors.base import EXTRACTORS
from protodb.extractors.factory import default_extractor_config, default_extractor_names
from protodb.profiles import PAPER_ENSEMBLE, PROFILES, Profile, get_profile, test_world
from protodb.query.config import QueryConfig
from protodb.settings import PROFILES as PROFILE_NAMES
from protodb.synthesis.generate import GENERATORS, default_generator_config

NAMES = PROFILES.names()


def test_the_settings_name_the_registered_profiles():
    assert PROFILE_NAMES == tuple(NAMES) == ("default", "tiny", "world", "world-learned")


@pytest.mark.parametrize("name", NAMES)
def test_every_profile_resolves_and_its_configs_are_the_stages_defaults(name):
    p = get_profile(name)
    assert isinstance(p, Profile) and p.name == name and get_profile(p) is p
    gen = p.generator_config()
    assert gen.name in GENERATORS and default_generator_config(name) == gen
    assert p.generator_config(steps=3).steps == 3
    assert p.generator_config(steps=None) == gen  # None leaves the profile's value
    assert p.extractors and default_extractor_names(name) == list(p.extractors)
    for ext in p.extractors:
        assert ext in EXTRACTORS
        assert default_extractor_config(name, ext) == p.extractor_config(ext)
    assert QueryConfig.for_profile(name).prefilter is p.prefilter
    assert QueryConfig.for_profile(name, eta=3).eta == 3
    assert p.prefilter_reason.startswith(f"profile {name}")
    assert (p.world is not None) is p.test_world


def test_default_and_tiny_are_defined_here_and_differ_as_data():
    real, tiny = get_profile("default"), get_profile("tiny")
    assert real.extractors == PAPER_ENSEMBLE == ("sd", "dino", "clip")
    assert tiny.extractors == ("dinov2",)
    assert real.prefilter and not tiny.prefilter
    assert real.notice is None and "random weights" in tiny.notice
    assert (real.generator_config().size, tiny.generator_config().size) == (512, 64)
    assert tiny.extractor_config("clip").layer == "keys:0"  # the 2-block twin's
    assert real.segmenter_model is None and tiny.segmenter_model == "tiny"
    assert not real.test_world and not tiny.test_world


def test_refer_defaults_come_from_the_profile():
    from protodb.refer.refer import default_refer_config

    tiny = default_refer_config("tiny")
    assert tiny.clip_model == "tiny" and tiny.proposals.source == "attention"
    assert tiny.proposals.segmenter_model == get_profile("tiny").segmenter_model
    assert tiny.attention.model == "tiny" and tiny.attention.size == 64
    assert default_refer_config("world-learned").attention.model == "protodb:world-learned"
    real = default_refer_config("default")
    assert real.attention.size == 1024 and real.proposals.segmenter_model is None
    with pytest.raises(ProtodbError, match="profile 'world' has no diffusion model"):
        default_refer_config("world")


def test_the_test_world_registers_its_profiles_and_hooks():
    world, learned = get_profile("world"), get_profile("world-learned")
    assert world.test_world and learned.test_world and world.world is learned.world
    assert world.extractors == ("world",) and learned.extractors == ("sd",)
    hooks = test_world()
    assert "red disc" in hooks.class_names and hooks.class_kind("grass") == "stuff"
    assert all(callable(f) for f in (hooks.make_dataset, hooks.make_referring_set, hooks.report))


def test_unknown_profile_lists_the_known_ones_in_one_line():
    with pytest.raises(ProtodbError) as info:
        get_profile("huge")
    message = str(info.value)
    assert "\n" not in message and "unknown profile 'huge'" in message
    assert all(name in message for name in NAMES)


def test_import_protodb_profiles_loads_no_world():
    import subprocess
    import sys

    code = (
        "import sys, protodb.profiles as p; p.get_profile('tiny'); "
        "print([m for m in sys.modules if m.startswith('protodb.world')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
