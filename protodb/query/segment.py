"""Segmentation of target images with a vocabulary (REFERENCE 1.6-1.8).

For one image: the CLIP pre-filter picks the classes present (optional, protodb.query.prefilter);
the background class is the union of the bg prototypes of the classes kept. For each extractor
of the vocabulary and each window (protodb.query.windows; windows of one size go through the
extractor as one batch): features, per-label scores by protodb.query.match (a per-class max of
cosine similarities), bilinearly upsampled to the window and clamped to [-1, 1]. Scores are
averaged over windows and extractors (without background prototypes, ``background=False``, the
background score is the constant ``bg_threshold``, as the paper's Table 3 ablation), optionally
refined by PAMR (protodb.query.pamr) on the resized image, resized to the image, non-positive
scores zeroed, and the argmax taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from protodb.bank.vocab import Vocabulary
from protodb.errors import ProtodbError
from protodb.extractors.factory import images_per_call
from protodb.progress import OFF, Progress
from protodb.query.assemble import ExtractorPrototypes, filter_stuff
from protodb.query.config import QueryConfig
from protodb.query.match import PrototypeIndex, labels_from_scores, match_index
from protodb.query.prefilter import Selection
from protodb.query.windows import Window, resized_size, sliding_windows


@dataclass
class SegmentResult:
    """labels: uint8 [H, W] (0 = background, i = vocabulary class i); scores: float32
    [1 + C, H, W] in [-1, 1] (averaged over windows and extractors; row 0 is the constant
    ``bg_threshold`` when the config has no background prototypes); winners: extractor id ->
    int32 [H, W], the prototype row (of that extractor's assembled prototypes, as
    :func:`protodb.query.assemble.assemble` returns them) behind the winning label, -1 for none;
    winner_scores: extractor id -> float32 [H, W], that prototype's cosine similarity at the
    pixel (in the window where it was highest); selection: what the pre-filter kept (None
    when it is off)."""

    vocab: str
    classes: list[str]
    labels: np.ndarray
    scores: np.ndarray
    winners: dict[str, np.ndarray] = field(default_factory=dict)
    winner_scores: dict[str, np.ndarray] = field(default_factory=dict)
    selection: Selection | None = None

    def areas(self) -> dict[str, float]:
        """Fraction of pixels per label name (background included), labels present only."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.classes) + 1)
        names = ["background", *self.classes]
        total = self.labels.size
        return {names[i]: round(float(c) / total, 6) for i, c in enumerate(counts) if c}


def select_rows(p: ExtractorPrototypes, config: QueryConfig) -> ExtractorPrototypes:
    """The rows of ``p`` that ``config`` uses: its prototype levels, bg rows only when
    ``config.background``, then stuff filtering (protodb.query.assemble.filter_stuff) when
    ``config.stuff_filter``. Returns ``p`` itself when every row stays."""
    keep = [
        i
        for i, r in enumerate(p.rows)
        if r["level"] in config.levels and (config.background or r["polarity"] != "bg")
    ]
    if len(keep) != len(p.rows):
        p = p.take(keep)
    return filter_stuff(p, config.stuff_threshold) if config.stuff_filter else p


@dataclass
class _Part:
    """One extractor's rows on the device: ``rows`` maps a selected row to its row in the
    assembled prototypes."""

    protos: ExtractorPrototypes
    extractor: object
    vectors: torch.Tensor
    owner: torch.Tensor
    source: torch.Tensor
    rows: torch.Tensor
    index: PrototypeIndex


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [h, w, 3], bilinear with antialiasing."""
    if image.shape[:2] == size:
        return image
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _cells(n_out: int, n_canvas: int, start: int, length: int, cells: int):
    """Along one axis: output pixels whose canvas pixel lies in [start, start + length), and
    the feature cell (of ``cells``) each falls in. -> (pixels int64 [k], cell int64 [k])."""
    canvas = np.minimum((np.arange(n_out) + 0.5) * n_canvas / n_out, n_canvas - 1e-6).astype(int)
    inside = np.flatnonzero((canvas >= start) & (canvas < start + length))
    cell = np.minimum(((canvas[inside] - start + 0.5) * cells / length).astype(int), cells - 1)
    return torch.from_numpy(inside), torch.from_numpy(cell)


class Segmenter:
    """Segments images with an assembled vocabulary (prototypes kept as device tensors).

    ``clip``: the pre-filter's encoders, any object with ``text(prompts) -> float [N, D]`` and
    ``image(uint8 [H, W, 3]) -> float [D]`` (default: protodb.query.prefilter.ClipEncoders for
    ``config.clip_model``, loaded on first use). ``batch``: windows per extractor call (default
    :func:`protodb.extractors.factory.images_per_call`: 2 on the CPU, 8 on a GPU); results do
    not depend on it beyond float rounding.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        prototypes: list[ExtractorPrototypes],
        device: str = "cpu",
        config: QueryConfig | None = None,
        *,
        clip=None,
        batch: int | None = None,
    ):
        from protodb.extractors.factory import get_extractor

        self.batch = batch
        self.vocab = vocab
        self.device = device
        self.config = config or QueryConfig()
        self.n_labels = len(vocab.classes) + 1
        self.clip = clip
        self._things_text = None  # the pre-filter's single-class prompt embeddings
        stuff = prototypes[0].stuff if prototypes else None
        self.stuff = np.zeros(self.n_labels, bool) if stuff is None else np.asarray(stuff, bool)
        self.parts: list[_Part] = []
        for full in prototypes:
            if full.rows:  # remember each row's position in ``full`` through the selection
                tagged = replace(full, rows=[{**r, "_row": i} for i, r in enumerate(full.rows)])
                p = select_rows(tagged, self.config)
                picked = [r["_row"] for r in p.rows]
            else:  # hand-made prototypes without metadata: every row, as given
                p, picked = full, list(range(len(full.owner)))
            vectors = torch.from_numpy(p.vectors).to(device)
            owner = torch.from_numpy(p.owner).to(device)
            source = torch.from_numpy(p.owner if p.source is None else p.source).to(device)
            rows = torch.tensor(picked, dtype=torch.long, device=device)
            self.parts.append(
                _Part(
                    full,
                    get_extractor(full.extractor.config, device),
                    vectors,
                    owner,
                    source,
                    rows,
                    PrototypeIndex.build(vectors, owner, self.n_labels),
                )
            )

    # ------------------------------------------------------------------ pre-filter

    def _clip(self):
        if self.clip is None:
            from protodb.models.openclip import paired_clip
            from protodb.query.prefilter import ClipEncoders

            model, pretrained = self.config.clip_model, self.config.clip_pretrained
            if model is None:
                configs = [p.protos.extractor.config for p in self.parts]
                if any(c.of_test_world for c in configs):
                    raise ProtodbError(
                        f"prefilter=True: vocabulary {self.vocab.name!r} is of the offline test "
                        "world, which has no CLIP for the pre-filter; turn it off "
                        "(--no-prefilter) or use --profile world or world-learned"
                    )
                model, pretrained = paired_clip(c.model for c in configs)
            self.clip = ClipEncoders(model, pretrained, self.device)
        return self.clip

    def prefilter(self, image: np.ndarray) -> Selection:
        """The classes the CLIP pre-filter keeps for ``image`` (uint8 [H, W, 3])."""
        from protodb.query.prefilter import class_text, select_classes

        clip = self._clip()
        names, stuff = self.vocab.class_names, self.stuff[1:].tolist()
        if self._things_text is None and not all(stuff):  # once per vocabulary
            self._things_text = class_text(names, stuff, clip.text)
        return select_classes(
            names, stuff, clip.image(image), clip.text, eta=self.config.eta,
            things_text=self._things_text,
        )  # fmt: skip

    # ------------------------------------------------------------------ segment

    def _match_part(self, part, kept, groups, canvas_image, total, bar) -> list:
        """One extractor over every window group: scores summed into ``total`` [L, H', W'];
        returns [(window, scores [L, h', w'], winner [L, h', w'])] for the winners."""
        index, rows = part.index, part.rows
        if not bool(kept.all()):
            use = kept[part.source]
            index = PrototypeIndex.build(part.vectors[use], part.owner[use], self.n_labels)
            rows = rows[use]
        mine = []
        step = self.batch or images_per_call(self.device)
        for (wh, ww), group in groups.items():
            # a few windows per extractor call: their features are matched and dropped before
            # the next call, so only one call's features (and activations) exist at a time
            for s in range(0, len(group), step):
                wins = group[s : s + step]
                crops = np.stack([canvas_image[v.y0 : v.y0 + wh, v.x0 : v.x0 + ww] for v in wins])
                feats = part.extractor.extract(crops)
                bar.update(len(wins))
                for win, f in zip(wins, feats, strict=True):
                    scores, winner = match_index(f, index)
                    scores = scores.clamp(-1, 1)
                    winner = torch.where(winner >= 0, rows[winner.clamp_min(0)], -1).int()
                    up = F.interpolate(
                        scores[None], size=(wh, ww), mode="bilinear", align_corners=False
                    )[0].clamp(-1, 1)
                    total[:, win.y0 : win.y0 + wh, win.x0 : win.x0 + ww] += up
                    mine.append((win, scores, winner))
                del feats
        return mine

    def segment(self, image: np.ndarray, progress: Progress = OFF) -> SegmentResult:
        """image: uint8 [H, W, 3] RGB -> SegmentResult at the image's size. ``progress``: a bar
        over (extractor, window) pairs, moved after each extractor call on a group of windows."""
        with torch.inference_mode():
            return self._segment(image, progress)

    def _segment(self, image: np.ndarray, progress: Progress = OFF) -> SegmentResult:
        h, w = image.shape[:2]
        selection = self.prefilter(image) if self.config.prefilter else None
        kept = torch.ones(self.n_labels, dtype=torch.bool, device=self.device)
        if selection is not None:
            kept[1:] = False
            kept[torch.tensor(selection.keep, dtype=torch.long)] = True
        if self.config.windows:
            ch, cw = resized_size(h, w)
            canvas_image = _resize_image(image, (ch, cw))
            windows = sliding_windows(ch, cw)
        else:
            ch, cw, canvas_image, windows = h, w, image, [Window(0, 0, h, w)]
        count = torch.zeros(1, ch, cw, device=self.device)
        for win in windows:
            count[:, win.y0 : win.y0 + win.h, win.x0 : win.x0 + win.w] += 1
        groups: dict[tuple[int, int], list[Window]] = {}
        for win in windows:
            groups.setdefault((win.h, win.w), []).append(win)
        total = torch.zeros(self.n_labels, ch, cw, device=self.device)
        small = []  # per part: [(window, scores [L, h', w'], winner [L, h', w'])]
        with progress.bar("windows", len(windows) * len(self.parts), "window") as bar:
            for part in self.parts:
                bar.set_description_str(f"windows, {part.protos.extractor.config.name}")
                small.append(self._match_part(part, kept, groups, canvas_image, total, bar))
        total /= count * len(self.parts)
        if not self.config.background:
            # Table 3's "without background prototypes": no bg prototypes, so background is a
            # constant score, and a pixel whose best fg score is at most it is background
            total[0] = self.config.bg_threshold
        if self.config.pamr:
            from protodb.query.pamr import pamr

            guide = torch.from_numpy(np.ascontiguousarray(canvas_image)).permute(2, 0, 1)
            total = pamr(guide.float().to(self.device), total)
        if (ch, cw) != (h, w):
            total = F.interpolate(total[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        labels = labels_from_scores(total)
        winners, winner_scores = {}, {}
        for part, mine in zip(self.parts, small, strict=True):
            best = torch.full((h, w), float("-inf"), device=self.device)
            win_rows = torch.full((h, w), -1, dtype=torch.long, device=self.device)
            for win, scores, winner in mine:
                ys, cy = _cells(h, ch, win.y0, win.h, scores.shape[1])
                xs, cx = _cells(w, cw, win.x0, win.w, scores.shape[2])
                ys, cy, xs, cx = (t.to(self.device) for t in (ys, cy, xs, cx))
                lab = labels[ys][:, xs]
                s = scores[lab, cy[:, None], cx[None, :]]
                r = winner[lab, cy[:, None], cx[None, :]]
                region = best[ys][:, xs]
                better = s > region
                best[ys[:, None], xs[None, :]] = torch.where(better, s, region)
                old = win_rows[ys][:, xs]
                win_rows[ys[:, None], xs[None, :]] = torch.where(better, r, old)
            ext_id = part.protos.extractor.extractor_id
            winners[ext_id] = win_rows.cpu().numpy().astype(np.int32)
            winner_scores[ext_id] = best.clamp(-1, 1).cpu().numpy().astype(np.float32)
        return SegmentResult(
            vocab=self.vocab.name,
            classes=self.vocab.class_names,
            labels=labels.cpu().numpy().astype(np.uint8),
            scores=total.clamp(-1, 1).cpu().numpy().astype(np.float32),
            winners=winners,
            winner_scores=winner_scores,
            selection=selection,
        )


def write_outputs(result: SegmentResult, image: np.ndarray, out_dir, stem: str, **options):
    """See :func:`protodb.query.outputs.write_outputs` (kept here for existing callers)."""
    from protodb.query.outputs import write_outputs as write

    return write(result, image, out_dir, stem, **options)
