"""The one output format of every benchmark under bench/.

Each figure is one line on stdout, tab-separated: ``name<TAB>value<TAB>unit<TAB>baseline: TEXT``,
where TEXT names the baseline measured in the same run (and the ratio against it), or ``-``.
``bench/run_all.py`` runs every ``bench_*.py`` and collects these lines.
"""

from __future__ import annotations

import resource
from pathlib import Path

CLIP_ARCH = "ViT-B-16-quickgelu"
DEFAULT_WORKDIR = Path.home() / ".cache" / "protodb-bench" / "random-weights"


def figure(name: str, value: float, unit: str, baseline: str = "-", digits: int = 3) -> str:
    """Print (and return) one figure line, e.g. ``figure("segment", 10.5, "ms/image")``."""
    line = f"{name}\t{value:.{digits}f}\t{unit}\tbaseline: {baseline}"
    print(line, flush=True)
    return line


BENCH_EXTRACTOR = "bench-768"
BENCH_GENERATOR = "sd-bench"


def append_synthetic_sets(bank, table: str, keys: list[str], per_class: int, dim: int, rng,
                          *, row_start: int | None) -> None:  # fmt: skip
    """Append one completed float16 prototype set per class key to ``bank``: ``per_class``
    random vectors each (half fg, half bg; a class prototype, then instances), then their
    completion records, in one commit each (the bank's row encodings, :mod:`protodb.bank.rows`).
    ``row_start``: the table's row count before this append (each set's range is recorded),
    or None to record no ranges (as a concurrent write leaves them)."""
    import uuid

    import numpy as np
    import pyarrow as pa

    from protodb.bank.rows import completed_record, prototypes_table, set_record, sets_table
    from protodb.bank.schema import SetKey
    from protodb.synthesis.recipe import make_recipe

    recipe = make_recipe("otsu", per_class - 1)  # the recipe of a plain add at this n
    vectors = rng.standard_normal((len(keys) * per_class, dim), dtype=np.float32)
    fg = per_class // 2
    sets, records = [], []
    for j, key in enumerate(keys):
        set_key = SetKey(key, BENCH_GENERATOR, 0, BENCH_EXTRACTOR, recipe.id)
        wid = uuid.uuid4().hex
        rows = prototypes_table(
            set_key,
            polarity=["fg"] * fg + ["bg"] * (per_class - fg),
            level=["class"] + ["instance"] * (per_class - 1),
            part=[-1] * per_class,
            support=list(range(-1, per_class - 1)),
            weight=[1.0] * per_class,
            vectors=vectors[j * per_class : (j + 1) * per_class],
            store_dtype="float16",
            write_id=wid,
        )
        record = set_record(
            set_key, name=key, n_supports=per_class - 1, n=per_class - 1,
            n_used=per_class - 1, n_fg=fg, n_bg=per_class - fg, dim=dim, mask_source="otsu",
            thresholds=[0.3, 0.6], generator_config="{}", extractor_config="{}", recipe=recipe,
        )  # fmt: skip
        start = -1 if row_start is None else row_start + j * per_class
        records.append(completed_record(record, write_id=wid, row_start=start, prototypes=rows))
        sets.append(rows)
    bank.append(table, pa.concat_tables(sets))
    bank.append("sets", sets_table(records))


# --------------------------------------------------------------------------- random-weight models


def build_models(workdir: Path, names: list[str]) -> dict[str, str]:
    """Save each real architecture with seeded random weights under ``workdir`` (once) and
    return extractor name -> the ``model`` its config names (a local directory or file)."""
    import torch

    from protodb.models.architectures import architectures, shipped_config

    workdir.mkdir(parents=True, exist_ok=True)
    out = {}
    torch.manual_seed(0)
    if "sd" in names:
        path = workdir / "sd15-random"
        if not (path / "model_index.json").exists():
            from protodb.models.diffusion import random_sd_pipeline

            pipe = random_sd_pipeline(0)
            pipe.save_pretrained(path)
            del pipe
        out["sd"] = str(path)
    if "dino" in names:
        path = workdir / "dino-vitb8-random"
        if not (path / "config.json").exists():
            from transformers import ViTConfig, ViTModel

            cfg = dict(shipped_config(architectures()["dino"].config))
            cfg.pop("model_type", None)
            ViTModel(ViTConfig(**cfg), add_pooling_layer=False).save_pretrained(path)
        out["dino"] = str(path)
    if "clip" in names:
        path = workdir / "clip-vitb16-random.pt"
        if not path.exists():
            import open_clip

            net = open_clip.create_model(CLIP_ARCH, pretrained=None)
            torch.save(net.state_dict(), path)
        out["clip"] = f"{CLIP_ARCH}/{path}"
    return out


def extractor_configs(models: dict[str, str], size: int) -> list:
    """The extractor configs: name -> model ("tiny" for the tiny twins)."""
    from protodb.extractors.factory import default_extractor_config
    from protodb.models.loading import is_twin

    return [
        default_extractor_config("tiny", name, input_size=size)
        if is_twin(model)
        else default_extractor_config("default", name, model=model, input_size=size)
        for name, model in models.items()
    ]


# --------------------------------------------------------------------------- host memory


def proc_status(key: str) -> int:
    """A /proc/self/status size field in bytes (e.g. "VmRSS", "VmHWM")."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak_rss() -> bool:
    """Reset the kernel's resident high-water mark (VmHWM); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss(reset: bool) -> int:
    """Peak resident bytes since :func:`reset_peak_rss` (``reset``: what it returned; else
    since the process started)."""
    if reset:
        return proc_status("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss() -> int:
    """Resident bytes now."""
    return proc_status("VmRSS")
