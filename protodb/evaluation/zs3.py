"""The zero-shot segmentation (ZS3) protocol: per-class IoUs to seen, unseen and harmonic means.

Grounded diffusion (REFERENCE 3) scores a segmenter trained on synthetic data, and its
grounding head, on a split of the classes into *seen* (the ones training saw) and *unseen*:
mIoU over the seen classes, mIoU over the unseen ones, and their harmonic mean
hIoU = 2 s u / (s + u) (0 when both are 0).

- The split (:func:`parse_split`): the unseen classes are given (names of the dataset, compared
  as class names are everywhere, after the renamings of REFERENCE 1.9; a benchmark's original
  names such as ``tvmonitor`` are accepted too), every other class is seen. ``"voc"`` names
  VOC's standard 15 / 5 split, :data:`VOC_UNSEEN` (see its source note).
- Background counts as a seen class, as in ZS3Net's metric code (valeoai/ZS3: the seen indices
  are ``arange(21)`` less the unseen ones, background 0 included).
- Each mean is over the split's classes that were scored, a class absent from both prediction
  and ground truth (IoU None / NaN) counted 0 as in the dataset's mIoU (REFERENCE 1.9); a class
  missing from the scores (e.g. never drawn in the grounding head's scenes) is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from protodb.errors import ParameterError
from protodb.names import class_key

VOC_UNSEEN = ("potted plant", "sheep", "sofa", "train", "monitor")
# REFERENCE 3 names these five; the 15/5 split is SPNet's (Xian et al., CVPR 2019), as far as
# we know (not checked against that paper here); ZS3Net's own VOC splits (valeoai/ZS3,
# data/pascal_voc_unseen_classes.txt) are 2-10 unseen classes starting cow, motorbike.
VOC_SPLIT_SOURCE = (
    "VOC 15/5 (REFERENCE 3): unseen potted plant, sheep, sofa, train, tvmonitor, the last five "
    "VOC labels (SPNet's split, Xian et al. 2019)"
)
BACKGROUND = "background"


@dataclass(frozen=True)
class Split:
    """A seen / unseen split of a dataset's classes (names as the dataset spells them, label
    order; ``seen`` holds background first when the dataset has one); ``source``: where it came
    from ("given" or :data:`VOC_SPLIT_SOURCE`)."""

    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    source: str = "given"


@dataclass
class ZS3Result:
    """The ZS3 figures, each in [0, 1] or None when its side has no scored class: miou_seen,
    miou_unseen and hiou = 2 s u / (s + u); seen / unseen: the classes each mean is over."""

    seen: list[str]
    unseen: list[str]
    miou_seen: float | None
    miou_unseen: float | None
    hiou: float | None
    source: str = "given"

    def to_dict(self) -> dict:
        return asdict(self)


def harmonic(seen: float, unseen: float) -> float:
    """2 s u / (s + u) of two values in [0, 1]; 0 when both are 0."""
    return 0.0 if seen + unseen == 0 else 2 * seen * unseen / (seen + unseen)


def parse_split(
    unseen: str | Sequence[str],
    classes: Sequence[str],
    *,
    aliases: Mapping[str, str] | None = None,
) -> Split:
    """The split of ``classes`` (a dataset's label names, ``classes[0] == "background"`` when it
    has one) whose unseen classes are ``unseen``: "voc" (:data:`VOC_UNSEEN`), a comma-separated
    string or a sequence of names. ``aliases``: other spellings -> the dataset's names (a
    benchmark's original names). Raises ParameterError("unseen", ...) naming a class that is not
    in ``classes``, background, an empty list, or one that leaves no seen class."""
    source = "given"
    if isinstance(unseen, str):
        if unseen.strip().casefold() == "voc":
            names, source = list(VOC_UNSEEN), VOC_SPLIT_SOURCE
        else:
            names = [t.strip() for t in unseen.split(",") if t.strip()]
    else:
        names = [str(t).strip() for t in unseen if str(t).strip()]
    if not names:
        raise ParameterError("unseen", unseen, "names no class; give class names, comma-separated")
    by_key = {class_key(c): c for c in classes}
    for old, new in (aliases or {}).items():
        by_key.setdefault(class_key(old), new)
    picked = []
    for n in names:
        name = by_key.get(class_key(n))
        if name is None:
            known = ", ".join(c for c in classes if c != BACKGROUND)
            raise ParameterError(
                "unseen", unseen, f"names {n!r}, which is not a class of the dataset ({known})"
            )
        if name == BACKGROUND:
            raise ParameterError("unseen", unseen, "names background, which is always seen")
        picked.append(name)
    chosen = set(picked)
    seen = tuple(c for c in classes if c not in chosen)
    if not [c for c in seen if c != BACKGROUND]:
        raise ParameterError("unseen", unseen, "leaves no seen class; leave at least one out")
    return Split(seen, tuple(c for c in classes if c in chosen), source)


def dataset_split(unseen: str | Sequence[str] | None, dataset) -> Split | None:
    """:func:`parse_split` over a protodb.evaluation.datasets.Dataset's classes, its original
    names (the renamings of its class list) accepted too; None when ``unseen`` is None."""
    if unseen is None:
        return None
    from protodb.evaluation.datasets import class_spec

    try:
        aliases = class_spec(dataset.name).get("renamed", {})
    except FileNotFoundError:  # folder, world: no shipped class list
        aliases = {}
    return parse_split(unseen, dataset.classes, aliases=aliases)


def _mean(values: Iterable[float | None]) -> float | None:
    v = [0.0 if x is None or math.isnan(x) else float(x) for x in values]
    return sum(v) / len(v) if v else None


def split_scores(ious: Mapping[str, float | None], split: Split) -> ZS3Result:
    """Per-class IoUs (class name -> IoU in [0, 1], None / NaN counted 0) -> the ZS3 figures of
    ``split`` (module docstring); classes of the split missing from ``ious`` are left out."""
    seen = [c for c in split.seen if c in ious]
    unseen = [c for c in split.unseen if c in ious]
    s, u = _mean(ious[c] for c in seen), _mean(ious[c] for c in unseen)
    h = None if s is None or u is None else harmonic(s, u)
    return ZS3Result(seen, unseen, s, u, h, split.source)


def attach(report, split: Split | None):
    """Set ``report.zs3`` (an EvalReport, or the full run of an AblationReport) to the figures of
    ``split`` over its per-class table; returns ``report``. No split: unchanged."""
    if split is not None:
        full = getattr(report, "full", report)
        full.zs3 = split_scores({c.name: c.iou for c in full.classes}, split)
    return report


def format_zs3(z: ZS3Result) -> str:
    """One line of text: 'ZS3: mIoU seen 61.2 (16 classes), unseen 20.4 (5), hIoU 30.6'."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}"

    return (
        f"ZS3: mIoU seen {pct(z.miou_seen)} ({len(z.seen)} classes), unseen "
        f"{pct(z.miou_unseen)} ({len(z.unseen)}: {', '.join(z.unseen)}), hIoU {pct(z.hiou)}"
    )
