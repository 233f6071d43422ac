"""Query-time settings of a segmentation: which parts of the OVDiff query engine run.

One frozen :class:`QueryConfig` travels from the CLI / API into
:class:`protodb.query.segment.Segmenter`.
Fields that switch a component off are what the evaluation harness's ablations toggle
(REFERENCE Table 3): ``background`` (with ``bg_threshold``), ``levels``, ``prefilter`` and
``stuff_filter``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from protodb.errors import ParameterError, ProtodbError
from protodb.profiles import Profile, get_profile

LEVELS = ("class", "instance", "part")


@dataclass(frozen=True)
class QueryConfig:
    """windows: sliding windows (448 and 336, stride 224, on the image resized to short side
    448) plus the whole image, else the whole image only (protodb.query.windows); background: a
    background class scored by the bg prototypes, else (Table 3's "without background
    prototypes") a constant background score ``bg_threshold`` in [-1, 1], so that a pixel whose
    best fused fg score is at most the threshold is background (0.72, the paper's grid-searched
    value; 0 gives the bare argmax over the classes); levels: prototype levels used (subset of
    class/instance/part); stuff_filter / stuff_threshold: stuff classes give no bg prototypes
    and thing bg prototypes with cosine > threshold to a stuff fg prototype are dropped
    (protodb.query.assemble.filter_stuff); prefilter / eta: the CLIP pre-filter keeping at most
    ``eta`` candidate classes (REFERENCE 1.7, eta = 10; protodb.query.prefilter); clip_model /
    clip_pretrained: its open_clip model (None: the CLIP paired with the vocabulary's extractor
    models, protodb.models.openclip.paired_clip: the tiny twin for tiny twins, else
    ViT-B-16-quickgelu / openai); pamr: refine the scores with PAMR (protodb.query.pamr).

    The plain ``QueryConfig()`` leaves the pre-filter off; :meth:`for_profile` (what
    ``ProtoDB.default_query_config`` uses) takes the profile's: on for the default profile (as
    the paper), off for ``tiny`` (random CLIP) and the test world (no text encoder).
    """

    windows: bool = True
    background: bool = True
    bg_threshold: float = 0.72
    levels: tuple[str, ...] = LEVELS
    stuff_filter: bool = True
    stuff_threshold: float = 0.85
    prefilter: bool = False
    eta: int = 10
    pamr: bool = False
    clip_model: str | None = None
    clip_pretrained: str | None = "openai"

    @classmethod
    def for_profile(cls, profile: str | Profile, **overrides) -> QueryConfig:
        """The query options of a profile (its pre-filter default), with ``overrides``
        (QueryConfig fields; None leaves the profile's value)."""
        base = cls(prefilter=get_profile(profile).prefilter)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def __post_init__(self) -> None:
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad or not self.levels:
            raise ProtodbError(
                f"levels={self.levels!r} must be a non-empty subset of {', '.join(LEVELS)}"
            )
        if not -1.0 <= self.bg_threshold <= 1.0:
            raise ParameterError(
                "bg_threshold", self.bg_threshold, "must be in [-1, 1] (the paper's is 0.72)"
            )
        if not -1.0 <= self.stuff_threshold <= 1.0:
            raise ProtodbError(f"stuff_threshold={self.stuff_threshold} must be in [-1, 1]")
        if isinstance(self.eta, bool) or not isinstance(self.eta, int) or not 1 <= self.eta <= 16:
            raise ProtodbError(
                f"eta={self.eta!r} must be a whole number of classes in 1..16 (the pre-filter "
                "tries 2^eta - 1 subsets; the paper uses 10)"
            )
