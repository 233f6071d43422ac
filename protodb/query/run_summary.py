"""The short summary at the end of a ``segment`` run: images, seconds per image, each class's
share of the pixels (:func:`summarize_run`), as a table a person reads or a dict for ``--json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class RunSummary:
    """images: how many the run covered; segmented / skipped: those segmented now and those
    done before (``skip_existing``); seconds: the run's wall time; seconds_per_image: seconds /
    segmented (None when nothing was segmented); pixels: all images' pixels; shares: label
    name (background first, then the vocabulary's classes in label order, absent ones at 0) ->
    fraction of all pixels in [0, 1], pixel-weighted over the images (6 decimals)."""

    images: int
    segmented: int
    skipped: int
    seconds: float
    seconds_per_image: float | None
    pixels: int
    shares: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """The summary as lines of text: a head line, then one line per label."""
        done = f", {self.skipped} done before" if self.skipped else ""
        per = "" if self.seconds_per_image is None else f"{self.seconds_per_image:.2f} s/image, "
        head = f"{self.images} images ({self.segmented} segmented{done}), {per}"
        head += f"{self.seconds:.1f} s in all"
        width = max([5, *(len(n) for n in self.shares)])
        rows = [f"{'class':<{width}}  pixels"]
        rows += [f"{n:<{width}}  {100 * v:5.1f}%" for n, v in self.shares.items()]
        return "\n".join([head, *rows])


def summarize_run(summaries: Sequence[dict], seconds: float) -> RunSummary:
    """The :class:`RunSummary` of a run's per-image ``summaries`` (protodb.query.outputs
    .write_outputs: "height", "width", "classes", "areas"; "skipped" as segment gives it)
    that took ``seconds`` in all."""
    names: list[str] = []
    for s in summaries:
        names += [n for n in s["classes"] if n not in names]
    weighted = dict.fromkeys(names, 0.0)
    pixels = 0
    for s in summaries:
        n = int(s["height"]) * int(s["width"])
        pixels += n
        for name, share in s["areas"].items():
            weighted[name] += share * n
    skipped = sum(1 for s in summaries if s.get("skipped"))
    segmented = len(summaries) - skipped
    return RunSummary(
        images=len(summaries),
        segmented=segmented,
        skipped=skipped,
        seconds=round(float(seconds), 3),
        seconds_per_image=round(seconds / segmented, 3) if segmented else None,
        pixels=pixels,
        shares={k: round(v / pixels, 6) if pixels else 0.0 for k, v in weighted.items()},
    )
