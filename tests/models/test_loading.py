"""Tiny weights across processes and the missing-model error (protodb.models.loading)."""

import subprocess
import sys

import pytest
from conftest import state_checksum

from protodb.errors import ModelNotFoundError
from protodb.models.loading import TINY
from protodb.models.openclip import load_clip
from protodb.models.vision import load_dinov2


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
    assert out.stdout.strip().splitlines()[-1] == state_checksum(load_dinov2(TINY, None, "cpu"))


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
