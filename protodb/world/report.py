"""The test world's quality report: mIoU through the learned path, its ablations, the oracle.

One labelled scene set, four banks built from it in a working directory:

- ``learned``: profile ``world-learned``: support images sampled by the shipped learned Stable
  Diffusion, cut by its own class-token cross-attention (otsu), described by the ``sd``
  extractor on the same UNet, and the ``world`` colour/texture extractor beside it;
- ``learned-maskcut``: the same generator and seed, masks from MaskCut instead of otsu;
- ``oracle``: profile ``world``: the procedural generator whose "attention" is the drawn
  ground truth (what the learned path is measured against, never the default).

Rows: the learned path with the sd extractor alone (the headline), with the ensemble of sd and
world, without background prototypes / instances / parts / stuff filtering (the paper's Table 3
ablations), with MaskCut masks; and the oracle with the same ablations.

    protodb world report [--n 8] [--images 24] [--seed 0]      (bench/bench_world.py prints it too)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

TABLE3 = ("bg", "instances", "parts", "stuff")


@dataclass
class ReportRow:
    """path: "learned" or "oracle"; setting: what this row changes ("full" for the base run);
    miou: percent in [0, 100], None where the setting does not apply (then ``note`` says why)."""

    path: str
    setting: str
    miou: float | None
    note: str = ""


@dataclass
class WorldReport:
    """rows in print order; seconds: wall time of each stage; settings: n, images, seed."""

    rows: list[ReportRow] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, int] = field(default_factory=dict)

    def miou(self, path: str, setting: str = "full") -> float | None:
        for r in self.rows:
            if (r.path, r.setting) == (path, setting):
                return r.miou
        raise KeyError((path, setting))

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as aligned text lines (path, setting, mIoU, note)."""
        out = [f"{'path':<8} {'setting':<26} {'mIoU':>6}"]
        for r in self.rows:
            value = "-" if r.miou is None else f"{r.miou:.1f}"
            note = f"  ({r.note})" if r.note else ""
            out.append(f"{r.path:<8} {r.setting:<26} {value:>6}{note}")
        return out


def _ablation_rows(report, path: str, base: str) -> list[ReportRow]:
    rows = [ReportRow(path, base, 100 * report.full.miou)]
    for row in report.rows:
        miou = None if row.miou is None else 100 * row.miou
        rows.append(ReportRow(path, f"without {row.name}", miou, row.note or ""))
    return rows


def world_report(
    workdir: str | Path,
    *,
    n: int = 8,
    images: int = 24,
    seed: int = 0,
    device: str | None = "cpu",
    say: Callable[[str], None] = lambda _: None,
) -> WorldReport:
    """Build the banks and scenes under ``workdir`` and evaluate every row (module docstring).
    ``say`` gets one line per finished stage. Runs on one torch thread (see
    :func:`protodb.settings.torch_threads`)."""
    from protodb.settings import torch_threads

    with torch_threads(1):
        return _report(Path(workdir), n=n, images=images, seed=seed, device=device, say=say)


def _report(work: Path, *, n: int, images: int, seed: int, device, say) -> WorldReport:
    from protodb.bank.vocab import create_vocab
    from protodb.evaluation.datasets import open_dataset
    from protodb.evaluation.evaluate import ablate
    from protodb.evaluation.evaluate import evaluate as evaluate_vocab
    from protodb.runtime import Runtime
    from protodb.world.bank import build_bank
    from protodb.world.classes import CLASS_NAMES
    from protodb.world.dataset import make_dataset

    rep = WorldReport(settings={"n": n, "images": images, "seed": seed})
    data = open_dataset("world", make_dataset(work / "data", n=images, seed=seed).root)

    def timed(stage: str, fn):
        t = time.perf_counter()
        out = fn()
        rep.seconds[stage] = time.perf_counter() - t
        say(f"{stage}: {rep.seconds[stage]:.1f} s")
        return out

    def evaluate(runtime: Runtime, vocab: str, ablations=()):
        if ablations:
            return ablate(runtime, vocab, data, list(ablations), progress=False)
        return evaluate_vocab(runtime, vocab, data, progress=False)

    def world_bank(name: str, profile: str, **add) -> Runtime:
        runtime = Runtime.connect(work / name, profile=profile, device=device)
        build_bank(runtime, n=n, seed=seed, progress=False, **add)
        return runtime

    learned = timed(
        "learned bank (sd + world extractors)",
        lambda: world_bank("learned", "world-learned", extractors=("sd", "world")),
    )
    create_vocab(learned.bank, "sd", list(CLASS_NAMES), extractors=["sd"], seed=seed)
    single = timed("learned: evaluate sd + ablations", lambda: evaluate(learned, "sd", TABLE3))
    rep.rows += _ablation_rows(single, "learned", "full (sd extractor)")
    both = timed("learned: evaluate ensemble", lambda: evaluate(learned, "world"))
    rep.rows.append(ReportRow("learned", "ensemble sd + world", 100 * both.miou))

    maskcut = timed(
        "learned bank, maskcut masks",
        lambda: world_bank(
            "learned-maskcut", "world-learned", extractors=("sd",), mask_source="maskcut"
        ),
    )
    mc = timed("learned: evaluate maskcut", lambda: evaluate(maskcut, "world"))
    rep.rows.append(ReportRow("learned", "maskcut masks (sd)", 100 * mc.miou))

    oracle = timed("oracle bank", lambda: world_bank("oracle", "world"))
    orc = timed("oracle: evaluate + ablations", lambda: evaluate(oracle, "world", TABLE3))
    rep.rows += _ablation_rows(orc, "oracle", "full (drawn attention)")
    return rep
