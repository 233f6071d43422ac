"""Evaluation: mIoU of a vocabulary on a labelled dataset, and ablations (REFERENCE 1.9).

mIoU is accumulated over the whole dataset: per class, intersections and unions are summed over
all images (pixels whose ground truth is 255 are ignored), IoU = I / U, and the mean is taken
over *all* classes of the dataset including background, with NaN (a class absent from both
prediction and ground truth, U = 0) counted as 0.

Prediction label i (the vocabulary's i-th class) is mapped to the dataset label of the class
with the same name (compared case-insensitively, after the renamings of the class list); the
vocabulary must hold exactly the dataset's classes, in any order.

The query config is the profile's unless one is given: exactly what ``segment`` uses (the CLIP
pre-filter on for the default profile, as the paper's Table 1), recorded in the report.

Ablations (the paper's Table 3) re-run the evaluation with one component of the query engine
removed from that base config, through :class:`protodb.query.config.QueryConfig`: ``bg``
(background=False: background where the best fg score is at most ``bg_threshold``, 0.72, as the
paper's row), ``instances`` / ``parts`` (that prototype level dropped), ``prefilter``
(prefilter=False; skipped, saying why, when the base run has it off), ``stuff``
(stuff_filter=False).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from protodb.errors import ProtodbError
from protodb.evaluation.datasets import IGNORE, Dataset, Sample
from protodb.evaluation.zs3 import ZS3Result
from protodb.names import class_key
from protodb.query.config import QueryConfig


def confusion(pred: np.ndarray, gt: np.ndarray, k: int) -> np.ndarray:
    """int64 [k, k] confusion counts (rows: ground truth, columns: prediction).

    pred, gt: integer [H, W] of the same shape; pixels with gt == 255 are ignored; pred must be
    in [0, k)."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    keep = gt != IGNORE
    g = gt[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    if g.size and (g.max() >= k or p.max() >= k or p.min() < 0):
        raise ValueError(f"labels out of range for {k} classes")
    return np.bincount(g * k + p, minlength=k * k).reshape(k, k)


class MIoU:
    """Accumulates a confusion matrix over images; mIoU as REFERENCE 1.9."""

    def __init__(self, n_classes: int) -> None:
        self.k = n_classes
        self.hist = np.zeros((n_classes, n_classes), np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        self.hist += confusion(pred, gt, self.k)

    @property
    def intersection(self) -> np.ndarray:
        return np.diag(self.hist).copy()

    @property
    def union(self) -> np.ndarray:
        return self.hist.sum(0) + self.hist.sum(1) - np.diag(self.hist)

    def iou(self) -> np.ndarray:
        """float64 [k] in [0, 1]; NaN for a class with union 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.intersection / self.union

    def miou(self) -> float:
        """Mean IoU over all k classes, NaN counted as 0; in [0, 1]."""
        return float(np.nan_to_num(self.iou(), nan=0.0).mean())

    def pixel_accuracy(self) -> float:
        total = self.hist.sum()
        return float(np.diag(self.hist).sum() / total) if total else float("nan")


@dataclass
class ClassIoU:
    """One row of the per-class table: iou in [0, 1] or None (absent from both, counted 0)."""

    label: int
    name: str
    iou: float | None
    intersection: int
    union: int
    gt_pixels: int


@dataclass
class EvalReport:
    """The result of one evaluation. miou, pixel_accuracy in [0, 1]; classes: per-class table
    in label order; config: the QueryConfig it ran with (its fields, ``dataclasses.asdict``);
    test_world: True on the offline world (synthetic data, not a benchmark)."""

    dataset: str
    root: str
    vocab: str
    n_images: int
    miou: float
    pixel_accuracy: float
    classes: list[ClassIoU]
    config: dict
    seconds: float
    test_world: bool = False
    notes: list[str] = field(default_factory=list)
    zs3: ZS3Result | None = None  # seen / unseen / hIoU when a split is given (evaluation.zs3)

    def to_dict(self) -> dict:
        return asdict(self)

    def config_line(self) -> str:
        """The query config it ran with, in one line (what ``protodb eval`` prints); a
        student's report names the student instead (it has no query engine)."""
        if "student" in self.config:
            return f"none: the student in {self.config['student']}"
        return describe_config(self.config)


def describe_config(config: dict) -> str:
    """One line for a QueryConfig's fields (``asdict``): the components on and off."""

    def on(key: str) -> str:
        return "on" if config[key] else "off"

    bg = "on" if config["background"] else f"off (bg where fg <= {config['bg_threshold']:g})"
    prefilter = f"on (eta {config['eta']})" if config["prefilter"] else "off"
    return (
        f"windows {on('windows')}, pre-filter {prefilter}, background prototypes {bg}, "
        f"levels {'+'.join(config['levels'])}, stuff filter {on('stuff_filter')}, "
        f"PAMR {on('pamr')}"
    )


def class_table(meter: MIoU, classes: list[str]) -> list[ClassIoU]:
    """The per-class rows of ``meter`` (one per label of ``classes``, in label order)."""
    iou, gt_pixels = meter.iou(), meter.hist.sum(1)
    return [
        ClassIoU(
            label=i,
            name=name,
            iou=None if np.isnan(iou[i]) else float(iou[i]),
            intersection=int(meter.intersection[i]),
            union=int(meter.union[i]),
            gt_pixels=int(gt_pixels[i]),
        )
        for i, name in enumerate(classes)
    ]


def label_map(
    vocab_classes: list[str], dataset: Dataset, *, what: str = "the vocabulary's", hint=None
) -> np.ndarray:
    """uint8 [256] lookup: prediction label (0 = background, i = vocab class i) -> dataset label.

    Raises a ProtodbError naming the classes that differ and how to build a matching vocabulary
    (``what``, ``hint``: another subject and fix for the message, e.g. a student's)."""
    want = {class_key(c): i for i, c in enumerate(dataset.classes) if i > 0}
    have = [class_key(c) for c in vocab_classes]
    missing = [dataset.classes[i] for k, i in want.items() if k not in have]
    extra = [c for c, k in zip(vocab_classes, have, strict=True) if k not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if extra:
            parts.append(f"not in the dataset: {', '.join(extra[:8])}")
        hint = hint or f"build one with `protodb vocab create NAME --from-dataset {dataset.name}`"
        raise ProtodbError(
            f"{what} classes do not match dataset {dataset.name!r} ({'; '.join(parts)}); {hint}"
        )
    lut = np.zeros(256, np.uint8)
    for i, k in enumerate(have, start=1):
        lut[i] = want[k]
    return lut


def evaluate(
    runtime,
    vocab: str,
    dataset: Dataset,
    *,
    config: QueryConfig | None = None,
    progress: bool = True,
    on_image: Callable[[Sample, np.ndarray], None] | None = None,
) -> EvalReport:
    """Segment every sample of ``dataset`` with vocabulary ``vocab`` of ``runtime`` (a
    protodb.runtime.Runtime or a ProtoDB: ``vocab(name, config)`` gives its handle) and
    accumulate mIoU. ``config``: the query engine's options (default: the profile's, exactly
    what ``segment`` uses: ``runtime.vocab(name)``'s); the report records the config it ran
    with. ``on_image(sample, labels)``: called per sample with the predicted labels, uint8
    [H, W] (0 = background, i = vocabulary class i), before they are mapped to dataset labels.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    handle = runtime.vocab(vocab, config)  # None: the profile's defaults, as segment's
    config = handle.config
    world = dataset.test_world or _world_vocab(handle.info)
    lut = label_map(handle.info.class_names, dataset)
    meter = MIoU(len(dataset.classes))
    desc = f"eval {dataset.name}" + (" (test world)" if dataset.test_world else "")
    for sample in tqdm(
        dataset.samples, desc=desc, unit="img", disable=not progress, file=sys.stderr, leave=False
    ):
        image, gt = dataset.load(sample)
        labels = handle.segment(image).labels
        if on_image is not None:
            on_image(sample, labels)
        meter.update(lut[labels], gt)
    rows = class_table(meter, dataset.classes)
    return EvalReport(
        dataset=dataset.name,
        root=str(dataset.root),
        vocab=vocab,
        n_images=len(dataset),
        miou=meter.miou(),
        pixel_accuracy=meter.pixel_accuracy(),
        classes=rows,
        config=asdict(config),
        seconds=time.perf_counter() - start,
        test_world=world,
    )


def _world_vocab(vocab) -> bool:
    """Whether the vocabulary was built in the test world (its procedural extractor, or a model
    trained on it), so reports say so."""
    return any(e.config.of_test_world for e in vocab.extractors)


# ---------------------------------------------------------------------------------- ablations

ABLATIONS = ("bg", "instances", "parts", "prefilter", "stuff")
_REMOVES = {
    "bg": "background prototypes (background where the best fg score <= {t}; the paper's: 0.72)",
    "instances": "instance prototypes",
    "parts": "part prototypes",
    "prefilter": "CLIP category pre-filter",
    "stuff": "stuff filtering",
}


def ablated_config(name: str, base: QueryConfig) -> QueryConfig | str:
    """The config with component ``name`` removed, or a string saying why it does not apply."""
    if name == "bg":
        return replace(base, background=False) if base.background else "off in the base run"
    if name in ("instances", "parts"):
        level = {"instances": "instance", "parts": "part"}[name]
        if level not in base.levels:
            return "off in the base run"
        rest = tuple(lv for lv in base.levels if lv != level)
        return replace(base, levels=rest) if rest else "it is the only level used"
    if name == "prefilter":
        return replace(base, prefilter=False) if base.prefilter else "off in the base run"
    if name == "stuff":
        return replace(base, stuff_filter=False) if base.stuff_filter else "off in the base run"
    raise ProtodbError(f"unknown ablation {name!r}; choose from {', '.join(ABLATIONS)}")


def parse_ablations(text: str) -> list[str]:
    """'bg,instances' -> ["bg", "instances"]; 'all' -> every ablation (ABLATIONS); unknown
    names raise a ProtodbError."""
    if text.strip() == "all":
        return list(ABLATIONS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ABLATIONS]
    if bad or not names:
        raise ProtodbError(
            f"--ablate {text!r}: use all or a comma-separated subset of {','.join(ABLATIONS)}"
        )
    return list(dict.fromkeys(names))


@dataclass
class AblationRow:
    """One ablation: miou (None when skipped) and delta = miou - full miou, in [-1, 1]; config:
    the QueryConfig fields it ran with (None when skipped); note: why it was skipped."""

    name: str
    removes: str
    miou: float | None
    delta: float | None
    note: str = ""
    config: dict | None = None


@dataclass
class AblationReport:
    """The full run and one row per ablation (like the paper's Table 3)."""

    full: EvalReport
    rows: list[AblationRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"full": self.full.to_dict(), "ablations": [asdict(r) for r in self.rows]}


def ablate(
    runtime,
    vocab: str,
    dataset: Dataset,
    names: list[str],
    *,
    config: QueryConfig | None = None,
    progress: bool = True,
) -> AblationReport:
    """Evaluate the full configuration, then once per ablation in ``names`` (see ABLATIONS);
    ``runtime`` as for :func:`evaluate`."""
    for n in names:
        if n not in ABLATIONS:
            raise ProtodbError(f"unknown ablation {n!r}; choose from {', '.join(ABLATIONS)}")
    base = runtime.vocab(vocab, config).config  # None: the profile's, as evaluate's
    full = evaluate(runtime, vocab, dataset, config=base, progress=progress)
    report = AblationReport(full)
    for n in names:
        cfg = ablated_config(n, base)
        removes = _REMOVES[n].format(t=f"{base.bg_threshold:g}")
        if isinstance(cfg, str):
            why = _prefilter_off(runtime, base) if n == "prefilter" else cfg
            report.rows.append(AblationRow(n, removes, None, None, f"skipped: {why}"))
            continue
        r = evaluate(runtime, vocab, dataset, config=cfg, progress=progress)
        report.rows.append(AblationRow(n, removes, r.miou, r.miou - full.miou, "", r.config))
    return report


def _prefilter_off(runtime, base: QueryConfig) -> str:
    """Why the base run has no pre-filter to remove, and the fix."""
    from protodb.profiles import get_profile

    profile = get_profile(runtime.settings.profile)
    why = profile.prefilter_reason if profile.prefilter == base.prefilter else "turned off"
    return (
        f"the pre-filter is off in the base run ({why}); ablate it from a base run with it on "
        "(--prefilter, QueryConfig(prefilter=True))"
    )


def evaluate_vocab(
    runtime,
    vocab: str,
    dataset: Dataset,
    split=None,
    *,
    ablations: Sequence[str] = (),
    config: QueryConfig | None = None,
    progress: bool = True,
) -> EvalReport | AblationReport:
    """``protodb eval`` of a vocabulary: :func:`ablate` when ``ablations`` are named, else
    :func:`evaluate`, with the ZS3 figures of ``split`` (protodb.evaluation.zs3.Split, or None)
    attached to the full run."""
    from protodb.evaluation.zs3 import attach

    if ablations:
        report = ablate(runtime, vocab, dataset, list(ablations), config=config, progress=progress)
    else:
        report = evaluate(runtime, vocab, dataset, config=config, progress=progress)
    return attach(report, split)
