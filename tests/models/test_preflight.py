"""Models are checked before work starts (protodb.models.preflight), on real files: the shipped
learned-world pipeline, a local copy of it, and hub ids that are not in the cache."""

from __future__ import annotations

import shutil
import time

import pytest
from typer.testing import CliRunner

from protodb.cli.app import app
from protodb.errors import ModelNotFoundError
from protodb.models.loading import resolve_model
from protodb.models.preflight import ModelNeed, check_model, preflight


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))


def test_tiny_shipped_and_local_models_are_found(tmp_path):
    assert check_model(ModelNeed("SD", "tiny", kind="diffusers")) == "tiny"
    assert check_model(ModelNeed("SD", "protodb:world-learned", kind="diffusers")) == "shipped"
    local = resolve_model("protodb:world-learned")
    assert check_model(ModelNeed("SD", local, kind="diffusers")) == "local"


def test_a_local_directory_without_its_config_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="Stable Diffusion"):
        check_model(ModelNeed("Stable Diffusion", str(tmp_path), kind="diffusers"))
    with pytest.raises(ModelNotFoundError, match="nope"):
        check_model(ModelNeed("DINO", str(tmp_path / "nope")))


def test_an_uncached_hub_id_offline_fails_at_once(offline):
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE") as err:
        preflight([ModelNeed("SD", "tiny"), ModelNeed("DINO", "facebook/dino-vitb8")])
    assert "facebook/dino-vitb8" in str(err.value)
    assert time.perf_counter() - start < 5


def test_open_clip_names_and_tags(offline):
    assert check_model(ModelNeed("CLIP", "ViT-B-16", kind="open_clip")) == "random"
    with pytest.raises(ModelNotFoundError, match="no-such-arch"):
        check_model(ModelNeed("CLIP", "no-such-arch/openai", kind="open_clip"))
    with pytest.raises(ModelNotFoundError, match="not-a-tag"):
        check_model(ModelNeed("CLIP", "ViT-B-16/not-a-tag", kind="open_clip"))
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        check_model(ModelNeed("CLIP", "ViT-B-16-quickgelu/openai", kind="open_clip"))


def test_add_with_a_missing_extractor_fails_before_sampling(offline, tmp_path):
    """`add --model DIR` on the real profile: the generator (and sd extractor) are a local
    pipeline that would sample at 512 px for minutes; DINO is not cached, so add stops at once,
    in one line, without making a bank."""
    model = tmp_path / "sd"
    shutil.copytree(resolve_model("protodb:world-learned"), model)
    bank = tmp_path / "bank"
    start = time.perf_counter()
    result = CliRunner().invoke(
        app, ["--bank", str(bank), "--profile", "default", "add", "cat", "--model", str(model)]
    )
    took = time.perf_counter() - start
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DINO" in lines[0] and "facebook/dino-vitb8" in lines[0]
    assert took < 20 and not bank.exists()


@pytest.mark.parametrize(
    "model", ["", "   ", "a" * 5000, "bad\x1b[2Jname", "x" * 300 + "/y", "nul\x00byte"]
)
def test_hostile_model_names_are_one_clear_error(offline, model):
    with pytest.raises(ModelNotFoundError):
        check_model(ModelNeed("Stable Diffusion", model, kind="diffusers"))
    if model.strip():  # "ViT-B-16/" (no tag) is open_clip's random weights, asked for
        with pytest.raises(ModelNotFoundError):
            check_model(ModelNeed("CLIP", f"ViT-B-16/{model}", kind="open_clip"))
