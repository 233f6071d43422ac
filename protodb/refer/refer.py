"""Referring segmentation end to end: one image and one expression in, one mask out.

    subject (head noun) -> generative attention (REFERENCE 2) -> proposals -> scores -> argmax

:class:`Referrer` holds the models (loaded once) and :meth:`Referrer.refer` returns a typed
:class:`ReferResult`. ``db.refer(image, expression)`` (protodb.api) is the library entry point.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from protodb.errors import ProtodbError
from protodb.profiles import Profile, get_profile
from protodb.refer.attention import (
    ReferAttentionConfig,
    check_expression,
    default_attention_config,
    generative_attention,
    load_pipeline,
    sanitise,
)
from protodb.refer.geometry import min_max
from protodb.refer.proposals import ProposalConfig, make_proposals, threshold_ladder
from protodb.refer.scores import (
    ClipScorer,
    ScoreWeights,
    apply_ramp,
    choose,
    fuse,
    generative_score,
    inside_minus_outside,
    position_score,
    position_word,
)
from protodb.refer.subject import Subject, find_subject

CLIP_REFERENCE = "ViT-B-16-quickgelu/openai"
STAGES = ("subject", "attention", "bank", "proposals", "scores", "fusion")


@dataclass(frozen=True)
class ReferConfig:
    """Every setting of a referring run, recorded with each result.

    discriminative: score proposals with CLIP (hard + soft); clip_model: "ARCH/PRETRAINED" or
    "tiny"; subject_method: "auto", "rules" or "spacy"."""

    attention: ReferAttentionConfig = field(default_factory=ReferAttentionConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    weights: ScoreWeights = field(default_factory=ScoreWeights)
    discriminative: bool = True
    clip_model: str = CLIP_REFERENCE
    subject_method: str = "auto"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attention"]["id"] = self.attention.id
        return d


def default_refer_config(profile: str | Profile, **overrides) -> ReferConfig:
    """A profile's referring settings (its ``refer`` fields over the reference's SD 1.5 at
    1024 px, SAM ViT-H automatic masks at 32 x 32 points, CLIP ViT-B/16: on ``tiny`` and
    ``world-learned`` the profile's diffusion model at 64 px, attention proposals (the
    generator-only variant) of more than 1 % of the image, the tiny SAM twin at 4 x 4 points
    for ``--source sam``, and the tiny random-weight CLIP), maskcut on the profile's segmenter
    model. ``overrides``: ReferConfig fields."""
    p = get_profile(profile)
    fields = dict(p.refer)
    proposals = {"segmenter_model": p.segmenter_model, **fields.pop("proposals", {})}
    base = ReferConfig(
        attention=default_attention_config(p), proposals=ProposalConfig(**proposals), **fields
    )
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class ScoredProposal:
    """One proposal: mask bool [H, W], its source label, and its scores (None: not computed);
    total: the fused score."""

    mask: np.ndarray
    source: str
    generative: float | None
    hard: float | None
    soft: float | None
    position: float | None
    bank: float | None
    total: float

    def scores(self) -> dict:
        return {
            "source": self.source,
            "area": int(self.mask.sum()),
            "generative": self.generative,
            "hard": self.hard,
            "soft": self.soft,
            "position": self.position,
            "bank": self.bank,
            "total": self.total,
        }


@dataclass
class ReferResult:
    """The region an expression refers to.

    mask: bool [H, W], the chosen proposal; chosen: its index in ``proposals``; subject: what
    the expression was reduced to (word, span, method); attention: float32 [H, W] in [0, 1],
    the subject's attention; position: "left", "right" or None; bank_class: the vocabulary class
    the bank-aware mode used (None: off or the subject is not a class); seconds: stage ->
    wall seconds; config: the ReferConfig as a dict."""

    expression: str
    mask: np.ndarray
    chosen: int
    proposals: list[ScoredProposal]
    subject: Subject
    attention: np.ndarray
    position: str | None
    bank_class: str | None
    seconds: dict[str, float]
    config: dict

    def summary(self) -> dict:
        """JSON-ready: everything but the arrays (proposal scores included)."""
        return {
            "expression": self.expression,
            "subject": asdict(self.subject),
            "position": self.position,
            "bank_class": self.bank_class,
            "chosen": self.chosen,
            "area": int(self.mask.sum()),
            "height": int(self.mask.shape[0]),
            "width": int(self.mask.shape[1]),
            "proposals": [p.scores() for p in self.proposals],
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "config": self.config,
        }


def vocab_class(classes: list[str], expression: str, subject: Subject) -> int | None:
    """The vocabulary class the subject names: the longest class name that occurs in the
    expression as whole words and covers the subject ("yellow star" for "the yellow star on the
    left"), else a class named exactly the subject word (or its singular); None otherwise."""
    import re

    low = expression.lower()
    best = None
    for i, name in enumerate(classes):
        n = name.lower()
        for m in re.finditer(rf"(?<!\w){re.escape(n)}(?!\w)", low):
            covers = m.start() <= subject.start and subject.end <= m.end()
            if covers and (best is None or len(n) > len(classes[best])):
                best = i
    if best is not None:
        return best
    names = {n.lower(): i for i, n in enumerate(classes)}
    word = subject.word.lower()
    return names.get(word, names.get(word[:-1]) if word.endswith("s") else None)


class Referrer:
    """The referring pipeline with its models loaded once.

    ``vocab``: a protodb.api.VocabHandle for the bank-aware mode (when the subject is one of its
    classes, the class's connected regions in the vocabulary's segmentation are further
    proposals and its prototype score map a further score)."""

    def __init__(
        self,
        config: ReferConfig,
        device: str = "cpu",
        vocab=None,
        *,
        pipe=None,
        clip_net=None,
        sam_net=None,
    ) -> None:
        """``pipe`` / ``clip_net`` / ``sam_net``: models built by the caller instead of loaded
        by name (the benchmark's real architectures with random weights)."""
        self.config = config
        self.device = device
        self.vocab = vocab
        self.sam_net = sam_net
        self.pipe = pipe if pipe is not None else load_pipeline(config.attention, device)
        self.clip = None
        if config.discriminative:
            self.clip = ClipScorer(config.clip_model, device, net=clip_net)

    def check(self, expression: str) -> str:
        """The expression as it will be used; a ProtodbError if it is empty or too long."""
        text = sanitise(expression)
        check_expression(self.pipe.tokenizer, text)
        return text

    def _bank(self, image: np.ndarray, expression: str, subject: Subject):
        """(proposal masks and labels, class score map float32 [H, W], class) or Nones."""
        from scipy import ndimage

        if self.vocab is None:
            return None, None, None
        index = vocab_class(self.vocab.info.class_names, expression, subject)
        if index is None:
            return None, None, None
        seg = self.vocab.segment(image)
        score = seg.scores[1 + index].astype(np.float32)
        region = seg.labels == 1 + index
        parts, n = ndimage.label(region)
        masks = [region] + [parts == k for k in range(1, n + 1)]
        labels = ["bank"] + [f"bank#{k}" for k in range(1, n + 1)]
        # the class's score map, min-max normalised, gives its own threshold ladder
        ladder, names_l = threshold_ladder(min_max(score), self.config.proposals.ladder)
        masks = np.concatenate([np.stack(masks), ladder])
        labels += [s.replace("attention", "bank") for s in names_l]
        return (masks, labels), score, self.vocab.info.class_names[index]

    def refer(self, image: np.ndarray, expression: str, *, subject: str | None = None):
        """The region of ``image`` (uint8 [H, W, 3]) that ``expression`` refers to; ``subject``
        overrides the head noun (a word of the expression). Returns a ReferResult."""
        cfg = self.config
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ProtodbError(
                f"image must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}"
            )
        seconds = dict.fromkeys(STAGES, 0.0)
        t0 = time.perf_counter()
        text = self.check(expression)
        subj = find_subject(text, method=cfg.subject_method, override=subject)
        side = position_word(text)
        t1 = time.perf_counter()
        att = generative_attention(
            image, text, (subj.start, subj.end), cfg.attention, device=self.device, pipe=self.pipe
        )
        t2 = time.perf_counter()
        extra, bank_map, bank_class = self._bank(image, text, subj)
        t3 = time.perf_counter()
        props = make_proposals(
            image, att.map, cfg.proposals, device=self.device, extra=extra,
            segmenter_net=self.sam_net,
        )  # fmt: skip
        masks = props.masks
        t4 = time.perf_counter()
        gen = generative_score(att.map, masks)
        pos = position_score(masks, side)
        bank = inside_minus_outside(bank_map, masks) if bank_map is not None else None
        hard = soft = None
        if self.clip is not None:
            emb = self.clip.text([text, subj.word])
            mix = emb[0] * 0.5 + emb[1] * 0.5
            mix = mix / mix.norm().clamp_min(1e-12)
            ramped = apply_ramp(image, side)
            hard = self.clip.hard(ramped, masks, emb[0])
            soft = self.clip.soft(ramped, masks, mix)
        t5 = time.perf_counter()
        total = fuse(
            {"hard": hard, "soft": soft, "generative": gen, "position": pos, "bank": bank},
            cfg.weights,
        )
        best = choose(total)
        t6 = time.perf_counter()
        seconds.update(
            subject=t1 - t0,
            attention=t2 - t1,
            bank=t3 - t2,
            proposals=t4 - t3,
            scores=t5 - t4,
            fusion=t6 - t5,
        )

        def val(a, i):
            return None if a is None else float(a[i])

        scored = [
            ScoredProposal(
                masks[i],
                props.sources[i],
                val(gen, i),
                val(hard, i),
                val(soft, i),
                val(pos, i),
                val(bank, i),
                float(total[i]),
            )
            for i in range(len(masks))
        ]
        return ReferResult(
            expression=text,
            mask=masks[best].copy(),
            chosen=best,
            proposals=scored,
            subject=subj,
            attention=att.map,
            position=side,
            bank_class=bank_class,
            seconds=seconds,
            config=cfg.to_dict(),
        )
