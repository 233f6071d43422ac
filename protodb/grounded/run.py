"""``protodb synth``: a labelled dataset generated with a vocabulary's generator.

For each composition (sampled from the vocabulary, or a prompt given): the image and every
entity's attention (protodb.grounded.sampling), the ``attention`` and ``vocab`` masks and their
agreement (protodb.grounded.entity_masks), the masks of the chosen source, and the files
(protodb.grounded.dataset). Images already in ``out`` are skipped.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from protodb.errors import ParameterError, ProtodbError
from protodb.grounded.compose import Composition, parse_prompt, sample_compositions
from protodb.grounded.dataset import SynthWriter, coco_annotations, image_id
from protodb.grounded.entity_masks import agreement, attention_masks, check_source, vocab_masks
from protodb.progress import Progress
from protodb.synthesis.generate import GeneratorConfig

FORMAT = "protodb-synth-1"


@dataclass
class SynthReport:
    """What a run did: ``made`` images generated (``accepted`` of them written, the others
    refused by ``min_agreement``), ``skipped`` already there; ``ids``: every accepted image of
    the dataset (this run's and earlier ones'); ``agreement``: this run's per-image agreement
    scores; ``seconds``: wall time of the run; ``seconds_per_image``: of the images made."""

    out: str
    vocab: str
    masks: str
    made: int = 0
    accepted: int = 0
    skipped: int = 0
    ids: list[str] = field(default_factory=list)
    agreement: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return self.made - self.accepted

    @property
    def seconds_per_image(self) -> float | None:
        return self.seconds / self.made if self.made else None

    def to_dict(self) -> dict:
        return {
            "out": self.out,
            "vocab": self.vocab,
            "masks": self.masks,
            "made": self.made,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "images_in_dataset": len(self.ids),
            "mean_agreement": float(np.mean(self.agreement)) if self.agreement else None,
            "seconds": round(self.seconds, 3),
            "seconds_per_image": self.seconds_per_image,
        }


def vocab_generator(bank, vocab) -> GeneratorConfig:
    """The generator config the sets of ``vocab`` (a protodb.bank.vocab.Vocabulary) record in
    ``bank`` (a Bank or a BankReader), one for all its classes."""
    configs = {}
    for c in vocab.classes:
        rows = [
            r for r in bank.sets(c.class_key).to_pylist() if r["generator_id"] == c.generator_id
        ]
        if rows:
            configs[c.generator_id] = rows[0]["generator_config"]
    if len(configs) != 1:
        raise ProtodbError(
            f"vocabulary {vocab.name!r} mixes {len(configs)} generator configs "
            f"({', '.join(sorted(configs))}); synth needs one: pin a vocabulary whose classes "
            "were added with the same generator"
        )
    fields = json.loads(next(iter(configs.values())))
    known = set(GeneratorConfig.__dataclass_fields__)
    config = GeneratorConfig(**{k: v for k, v in fields.items() if k in known})
    if config.name != "sd":
        raise ProtodbError(
            f"vocabulary {vocab.name!r} was made with generator {config.name!r}; synth needs a "
            "diffusion model (generator 'sd'): use --profile tiny, world-learned or default"
        )
    return config


def synthesize(
    runtime,
    *,
    vocab: str,
    out: str | os.PathLike,
    per_class: int | None = None,
    prompts: Sequence[str] | None = None,
    per_prompt: int = 1,
    seed: int = 0,
    masks: str = "attention",
    proposals: str = "otsu",
    min_agreement: float | None = None,
    grounding: str | os.PathLike | None = None,
    progress: bool | Progress = True,
) -> SynthReport:
    """Write (or complete) the dataset in ``out``; see the module docstring. Exactly one of
    ``per_class`` (compositions per vocabulary class) and ``prompts`` (each ``per_prompt``
    times). ``masks``: the source written (attention, vocab, grounding); ``proposals``: the fg
    machinery of the attention source (otsu, maskcut, sam); ``min_agreement``: refuse images
    whose attention/vocab agreement is below it; ``grounding``: the head's directory (for
    ``masks="grounding"``). ``runtime``: the session (protodb.runtime.Runtime: the bank, the
    vocabulary's handle, the device)."""
    from protodb.synthesis.masks import MASK_SOURCES

    check_source(masks)
    MASK_SOURCES.get(proposals)
    if (per_class is None) == (prompts is None):
        raise ProtodbError(
            "give --per-class N (compositions of the vocabulary) or prompts "
            "(--prompt / --from), not both and not neither"
        )
    if min_agreement is not None and not (
        math.isfinite(min_agreement) and 0.0 <= min_agreement <= 1.0
    ):
        raise ParameterError("min_agreement", min_agreement, "must be from 0 to 1")
    if not 0 <= seed < 2**63:
        raise ParameterError("seed", seed, "must be from 0 to 2**63 - 1")
    if per_prompt < 1:
        raise ParameterError("per_prompt", per_prompt, "must be >= 1")
    if per_class is not None and per_class < 1:
        raise ParameterError("per_class", per_class, "must be >= 1")
    if masks == "grounding" and grounding is None:
        raise ProtodbError(
            "--masks grounding needs --grounding DIR (a head saved by `protodb grounding train`)"
        )
    handle = runtime.vocab(vocab)
    info = handle.info
    classes = info.class_names
    kind_of = {c.class_key: c.kind for c in runtime.classes()}
    kinds = ["stuff" if kind_of.get(c.class_key) == "stuff" else "thing" for c in info.classes]
    config = vocab_generator(runtime.open_existing(), info)
    device = runtime.device
    if per_class is not None:
        comps = sample_compositions(classes, kinds, per_class, seed)
    else:
        comps = []
        for text in prompts:
            base = parse_prompt(text, classes)
            comps += [
                Composition(base.prompt, base.entities, "prompt", j) for j in range(per_prompt)
            ]
    head = None
    if masks == "grounding":
        from protodb.grounded.grounding import GroundingHead

        head = GroundingHead.load(grounding)
    settings = {
        "format": FORMAT,
        "vocab": info.name,
        "vocab_bank_version": info.bank_version,
        "classes": classes,
        "generator_id": config.id,
        "generator_config": json.loads(config.to_json()),
        "seed": seed,
        "masks": masks,
        "proposals": proposals,
        "min_agreement": min_agreement,
        "grounding": None if head is None else head.id,
        "profile": runtime.settings.profile,
    }
    writer = SynthWriter(out, settings, classes)
    stems = [image_id(c.slot, c.prompt, config.id, seed, c.index) for c in comps]
    todo = [(c, s) for c, s in zip(comps, stems, strict=True) if not writer.done(s)]
    todo = list({s: (c, s) for c, s in todo}.values())  # a prompt given twice is one image
    report = SynthReport(str(out), info.name, masks, skipped=len(comps) - len(todo))
    made_with = _runtime(device)
    prog = Progress.of(progress)
    start = time.perf_counter()
    stem_of = {id(c): s for c, s in todo}
    with prog.bar("synth", len(todo), "image", fractional=True) as bar:

        def on_image(g) -> None:
            c = g.composition
            labels = [e.label for e in c.entities]
            att = attention_masks(g.image, g.attention, labels, proposals=proposals, device=device)
            voc = vocab_masks(handle.segment(g.image).labels, labels)
            score = agreement(att, voc)
            chosen = {"attention": att, "vocab": voc}.get(masks)
            if head is not None:
                chosen = head.entity_masks(g.image, c, config, device=device)
            ok = min_agreement is None or score >= min_agreement
            stem = stem_of[id(c)]
            record = {
                "id": stem,
                "accepted": ok,
                "prompt": c.prompt,
                "slot": c.slot,
                "index": c.index,
                "anchor": c.anchor,
                "entities": [
                    {"name": e.name, "label": e.label, "spans": [list(s) for s in e.spans]}
                    for e in c.entities
                ],
                "noise_seed": g.noise_seed,
                "seed": seed,
                "generator_id": config.id,
                "generator_config": settings["generator_config"],
                "vocab": info.name,
                "vocab_bank_version": info.bank_version,
                "masks": masks,
                "proposals": proposals,
                "grounding": settings["grounding"],
                "agreement": round(score, 6),
                "min_agreement": min_agreement,
                "areas": {
                    src.source: [int(m.sum()) for m in src.masks] for src in (att, voc, chosen)
                },
                "height": int(g.image.shape[0]),
                "width": int(g.image.shape[1]),
                "annotations": coco_annotations(c.entities, chosen.masks) if ok else [],
                "runtime": made_with,
            }
            writer.write(stem, g.image, chosen.label_map() if ok else None, record)
            report.made += 1
            report.accepted += int(ok)
            report.agreement.append(score)
            bar.set_postfix_str(f"agreement {score:.2f}")

        from protodb.grounded.sampling import generate

        generate(
            [c for c, _ in todo],
            config,
            seed,
            device=device,
            on_image=on_image,
            on_step=bar.update,
        )
    report.seconds = time.perf_counter() - start
    report.ids = writer.finish(kinds)
    return report


def _runtime(device: str) -> dict:
    """Where the images were made (recorded, not part of any key)."""
    import diffusers
    import torch

    from protodb.version import __version__

    return {
        "protodb": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "device": device,
    }
