"""A pinned vocabulary ready to query: :class:`VocabHandle` (``db.vocab(name)``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from protodb.errors import ProtodbError
from protodb.progress import Progress
from protodb.query.config import QueryConfig

if TYPE_CHECKING:
    from protodb.bank.vocab import Vocabulary


class VocabHandle:
    """A pinned vocabulary with its prototypes assembled lazily (once per handle).

    ``runtime``: where the assembled segmenter and the bank come from (a
    protodb.runtime.Runtime: ``segmenter(vocab, config)`` caches the Segmenter per session,
    ``open_existing()`` the bank ``explain`` reads support images from)."""

    def __init__(self, runtime, vocab: Vocabulary, config: QueryConfig | None = None) -> None:
        self.runtime = runtime
        self.info = vocab
        self.config = config or QueryConfig()
        self._segmenter = None

    @property
    def segmenter(self):
        """The protodb.query.segment.Segmenter of this vocabulary and config."""
        if self._segmenter is None:
            self._segmenter = self.runtime.segmenter(self.info, self.config)
        return self._segmenter

    def segment(self, image: np.ndarray | str | os.PathLike, *, progress: bool | Progress = False):
        """Segment one image (uint8 [H, W, 3] RGB or a path); ``progress``: a bar over its
        (extractor, window) pairs.

        Returns a protodb.query.segment.SegmentResult."""
        from protodb.images import load_rgb

        array = load_rgb(image) if isinstance(image, str | os.PathLike) else np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ProtodbError(
                f"image must be uint8 [H, W, 3] RGB, got {array.dtype} {array.shape}"
            )
        return self.segmenter.segment(array, Progress.of(progress))

    def explain(
        self,
        image: np.ndarray | str | os.PathLike,
        x: int,
        y: int,
        *,
        out: str | os.PathLike | None = None,
    ):
        """Which class won pixel (x, y) (column, row) and through which prototype; with ``out``,
        a PNG of the support-image regions that prototype came from.
        Returns protodb.query.explain.Explanation."""
        return self.explain_points(image, [(x, y)], out=out)[0]

    def explain_points(
        self,
        image: np.ndarray | str | os.PathLike,
        points: Sequence[tuple[int, int]],
        *,
        out: str | os.PathLike | None = None,
    ):
        """Explain several pixels (x, y) of one image from a single segmentation of it.
        Returns one protodb.query.explain.Explanation per point, in order; pictures as in
        protodb.query.explain.explain_points."""
        from protodb.images import load_rgb
        from protodb.query.explain import explain_points

        is_path = isinstance(image, str | os.PathLike)
        stem = Path(image).stem if is_path else "image"
        array = load_rgb(image) if is_path else np.asarray(image)
        bank = self.runtime.open_existing()
        return explain_points(bank, self.segmenter, array, points, out=out, stem=stem)
