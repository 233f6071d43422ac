from pathlib import Path

import pytest

from protodb.errors import ProtodbError
from protodb.settings import (
    ENV_BANK,
    ENV_DEVICE,
    ENV_PROFILE,
    Settings,
    default_bank_uri,
    resolve_bank_uri,
    resolve_device,
    resolve_profile,
)


def test_profile_default_and_argument():
    assert resolve_profile() == "default"
    assert resolve_profile("tiny") == "tiny"


def test_profile_from_env_and_argument_wins(monkeypatch):
    monkeypatch.setenv(ENV_PROFILE, "tiny")
    assert resolve_profile() == "tiny"
    assert resolve_profile("default") == "default"


def test_unknown_profile_names_value(monkeypatch):
    with pytest.raises(ProtodbError, match="unknown profile 'huge'"):
        resolve_profile("huge")
    monkeypatch.setenv(ENV_PROFILE, "small")
    with pytest.raises(ProtodbError, match="unknown profile 'small'"):
        resolve_profile()


def test_bank_uri_argument_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_bank_uri("rel/bank") == str(tmp_path.resolve() / "rel" / "bank")
    assert resolve_bank_uri(tmp_path / "b") == str((tmp_path / "b").resolve())


def test_bank_uri_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_BANK, str(tmp_path / "envbank"))
    assert resolve_bank_uri() == str((tmp_path / "envbank").resolve())
    assert resolve_bank_uri(tmp_path / "arg") == str((tmp_path / "arg").resolve())


def test_bank_uri_with_scheme_passes_unchanged():
    assert resolve_bank_uri("s3://bucket/bank") == "s3://bucket/bank"
    assert resolve_bank_uri("gs://b/x") == "gs://b/x"


def test_bank_uri_default_is_user_data_dir():
    uri = resolve_bank_uri()
    assert uri == default_bank_uri()
    assert Path(uri).parts[-2:] == ("protodb", "bank")


def test_empty_bank_raises():
    with pytest.raises(ProtodbError, match="empty bank location"):
        resolve_bank_uri("   ")


def test_device_cpu_and_auto(monkeypatch):
    import torch

    assert resolve_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device() == expected
    assert resolve_device("auto") == expected
    monkeypatch.setenv(ENV_DEVICE, "cpu")
    assert resolve_device() == "cpu"


def test_unknown_device_names_value():
    with pytest.raises(ProtodbError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_cuda_without_gpu_raises():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ProtodbError, match="sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ProtodbError, match="'cuda:1'"):
        resolve_device("cuda:1")


def test_settings_resolve(tmp_path, monkeypatch):
    s = Settings.resolve(bank=str(tmp_path), profile="tiny")
    assert s == Settings(bank=str(tmp_path.resolve()), profile="tiny", device="auto")
    monkeypatch.setenv(ENV_DEVICE, "cpu")
    monkeypatch.setenv(ENV_PROFILE, "tiny")
    monkeypatch.setenv(ENV_BANK, str(tmp_path / "e"))
    s = Settings.resolve()
    assert (s.bank, s.profile, s.device) == (str((tmp_path / "e").resolve()), "tiny", "cpu")


def test_settings_rejects_bad_device():
    with pytest.raises(ProtodbError, match="unknown device 'gpu'"):
        Settings.resolve(bank="/tmp/x", profile="tiny", device="gpu")
    with pytest.raises(ProtodbError, match="unknown profile 'x'"):
        Settings.resolve(bank="/tmp/x", profile="x")
