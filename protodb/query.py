"""Query-time settings of a segmentation: which parts of the OVDiff query engine run.

One frozen :class:`QueryConfig` travels from the CLI / API into :class:`protodb.segment.Segmenter`.
Fields that switch a component off are what the evaluation harness's ablations toggle
(REFERENCE Table 3): ``background``, ``levels``, ``prefilter`` and ``stuff_filter``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protodb.errors import ProtodbError

LEVELS = ("class", "instance", "part")


@dataclass(frozen=True)
class QueryConfig:
    """windows: sliding windows (448 and 336, stride 224) plus the whole image, else the whole
    image only; background: a background class from the bg prototypes; levels: prototype levels
    used (subset of class/instance/part); stuff_filter / stuff_threshold: drop thing bg
    prototypes with cosine > threshold to a stuff fg prototype; prefilter / eta: the CLIP
    pre-filter; pamr: refine the scores with PAMR."""

    windows: bool = True
    background: bool = True
    levels: tuple[str, ...] = LEVELS
    stuff_filter: bool = True
    stuff_threshold: float = 0.85
    prefilter: bool = False
    eta: float = 0.5
    pamr: bool = False

    def __post_init__(self) -> None:
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad or not self.levels:
            raise ProtodbError(
                f"levels={self.levels!r} must be a non-empty subset of {', '.join(LEVELS)}"
            )
        if not -1.0 <= self.stuff_threshold <= 1.0:
            raise ProtodbError(f"stuff_threshold={self.stuff_threshold} must be in [-1, 1]")
        if not 0.0 <= self.eta <= 1.0:
            raise ProtodbError(f"eta={self.eta} must be in [0, 1]")
