"""The learned world's shipped weights: where they are, their recorded hashes, how they are made.

The trained pipeline ships inside the package in the diffusers layout (``model/``: unet, vae
and text encoder as float16 safetensors, the tokenizer and scheduler configs) beside
``model.sha256.json``, the sha256 of every file. It is loaded like any local model directory,
under the location-independent name ``protodb:world-learned`` (see
:func:`protodb.models.loading.resolve_model`), after its files are checked against their hashes.

    python -m protodb.world.learned.weights SRC   # ship a training run's output (train.py)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from importlib import resources
from pathlib import Path

from protodb.errors import ProtodbError
from protodb.models.loading import SHIPPED

NAME = "world-learned"
MODEL = f"protodb:{NAME}"
HASHES = "model.sha256.json"


def _here() -> Path:
    return Path(str(resources.files("protodb.world.learned")))


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by path relative to it (sorted)."""
    out = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def verify(root: Path, hashes: Path) -> Path:
    """``root`` after checking every file under it against the sha256 recorded in ``hashes``
    (missing, extra or changed files raise ProtodbError naming one)."""
    if not root.is_dir() or not hashes.exists():
        raise ProtodbError(
            f"the learned test world's weights are not in this installation ({root}); "
            "reinstall protodb, or train them: python -m protodb.world.learned.train"
        )
    recorded = json.loads(hashes.read_text())["files"]
    found = file_hashes(root)
    if found != recorded:
        bad = sorted(k for k in recorded.keys() | found.keys() if recorded.get(k) != found.get(k))
        raise ProtodbError(
            f"the learned test world's weights differ from their recorded sha256 ({bad[0]}"
            f"{' and more' if len(bad) > 1 else ''}); reinstall protodb"
        )
    return root


@SHIPPED.register(NAME)
def model_dir() -> Path:
    """The shipped pipeline's directory, after checking every file against its recorded hash."""
    return verify(_here() / "model", _here() / HASHES)


def ship(src: str | Path, dst: str | Path | None = None) -> Path:
    """Copy a training run's pipeline (``src``) to the package as float16 safetensors (the
    tokenizer and configs as they are) and record every file's sha256. Returns ``dst``."""
    import torch
    from diffusers import StableDiffusionPipeline

    from protodb.models.loading import quiet_loading

    quiet_loading()
    dst = Path(dst) if dst is not None else _here() / "model"
    pipe = StableDiffusionPipeline.from_pretrained(str(src), dtype=torch.float32)
    pipe.to(torch.float16)
    if dst.exists():
        shutil.rmtree(dst)
    pipe.save_pretrained(dst, safe_serialization=True)
    info = {"name": MODEL, "source": "python -m protodb.world.learned.train", "files": {}}
    for extra in (
        "train_config.json",
        "train_log.jsonl",
        "resumed_config.json",
        "resumed_log.jsonl",
    ):
        if (Path(src) / extra).exists():
            shutil.copy(Path(src) / extra, dst / extra)
    info["files"] = file_hashes(dst)
    (dst.parent / HASHES).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return dst


if __name__ == "__main__":
    print(ship(sys.argv[1]))
