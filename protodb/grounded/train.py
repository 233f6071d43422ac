"""Training the grounding head on synthetic images, and scoring it on seen and unseen classes.

:func:`train_grounding` (``protodb grounding train``): compositions of the seen classes only
(the sampler of protodb.grounded.compose over them), generated with the vocabulary's generator,
masks from a training-free source (``attention`` or ``vocab``, protodb.grounded.entity_masks;
the paper used Mask R-CNN, trained on human masks), features of the frozen UNet, then
:func:`protodb.grounded.grounding.train_head`. :func:`score_on_scenes` scores a head on the
procedural test world's captioned scenes, whose masks are exact (the learned world was trained on
such scenes; they stand in for the paper's PASCAL-sim), per class, split seen / unseen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protodb.errors import ProtodbError
from protodb.names import class_key
from protodb.progress import Progress


@dataclass
class TrainReport:
    out: str
    head_id: str
    seen: list[str]
    images: int
    steps: int
    loss_first: float
    loss_last: float
    seconds: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def read_classes(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ProtodbError(
            f"--classes {str(p)!r} is not a file; give a text file, one class a line"
        )
    names = [ln.strip() for ln in p.read_text("utf-8").splitlines() if ln.strip()]
    if not names:
        raise ProtodbError(f"--classes {str(p)!r} lists no class; write one class a line")
    return names


def train_grounding(
    runtime,
    *,
    vocab: str,
    seen: Sequence[str],
    out: str | os.PathLike,
    per_class: int = 4,
    steps: int = 300,
    masks: str = "attention",
    seed: int = 0,
    dim: int = 32,
    progress: bool | Progress = True,
) -> TrainReport:
    """Train a grounding head on synthetic images of the ``seen`` classes of ``vocab`` and save
    it to ``out`` (module docstring); ``runtime``: the session (protodb.runtime.Runtime)."""
    import time

    from protodb.grounded.compose import sample_compositions
    from protodb.grounded.entity_masks import attention_masks, vocab_masks
    from protodb.grounded.grounding import make_example, new_head, train_head
    from protodb.grounded.run import vocab_generator
    from protodb.grounded.sampling import generate, load_pipeline

    if masks not in ("attention", "vocab"):
        raise ProtodbError(f"--masks {masks!r}: train on attention or vocab masks")
    if steps < 1 or per_class < 1:
        raise ProtodbError(f"--steps {steps} and --per-class {per_class} must be >= 1")
    handle = runtime.vocab(vocab)
    info = handle.info
    by_key = {c.class_key: c for c in info.classes}
    unknown = [s for s in seen if class_key(s) not in by_key]
    if unknown:
        raise ProtodbError(
            f"seen class {unknown[0]!r} is not in vocabulary {vocab!r} "
            f"({', '.join(info.class_names)})"
        )
    names = [by_key[class_key(s)].name for s in seen]
    kind_of = {c.class_key: c.kind for c in runtime.classes()}
    kinds = ["stuff" if kind_of.get(class_key(n)) == "stuff" else "thing" for n in names]
    config, device = vocab_generator(runtime.open_existing(), info), runtime.device
    label = {c.name: i + 1 for i, c in enumerate(info.classes)}
    comps = sample_compositions(names, kinds, per_class, seed)
    start = time.perf_counter()
    prog = Progress.of(progress)
    pipe = load_pipeline(config, device)
    examples = []
    with prog.bar("grounding: images", len(comps), "image") as bar:

        def on_image(g) -> None:
            labels = [label[e.name] for e in g.composition.entities]
            if masks == "attention":
                m = attention_masks(g.image, g.attention, labels, device=device)
            else:
                m = vocab_masks(handle.segment(g.image).labels, labels)
            examples.append(make_example(pipe, g.image, g.composition, m.masks))
            bar.update(1)

        generate(comps, config, seed, device=device, on_image=on_image)
    head = new_head(
        examples[0],
        dim=dim,
        info={
            "generator_id": config.id,
            "vocab": info.name,
            "seen": names,
            "masks": masks,
            "per_class": per_class,
            "steps": steps,
            "seed": seed,
            "mask_note": "trained on training-free masks (the paper used Mask R-CNN masks)",
        },
    )
    with prog.bar("grounding: train", steps, "step") as bar:
        losses = train_head(head, examples, steps=steps, seed=seed, on_step=bar.update)
    head.save(out)
    return TrainReport(
        str(out), head.id, names, len(examples), steps,
        float(np.mean(losses[:10])), float(np.mean(losses[-10:])),
        time.perf_counter() - start,
    )  # fmt: skip


@dataclass
class SeenUnseen:
    """Per class IoU (summed intersections over summed unions, over scenes) on exact masks, and
    the ZS3 figures over them: the classes the head was trained on (``seen``) against the rest."""

    ious: dict[str, float] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def zs3(self):
        """mIoU over the seen classes scored, over the unseen ones, and their harmonic mean
        (protodb.evaluation.zs3.split_scores, the figures `protodb eval --unseen` reports)."""
        from protodb.evaluation.zs3 import Split, split_scores

        seen = tuple(n for n in self.ious if n in self.seen)
        unseen = tuple(n for n in self.ious if n not in self.seen)
        split = Split(seen, unseen, "seen: the classes the head was trained on")
        return split_scores(self.ious, split)

    def mean(self, seen: bool) -> float | None:
        z = self.zs3()
        return z.miou_seen if seen else z.miou_unseen


def score_on_scenes(head, generator, *, n: int = 16, seed: int = 1, device: str = "cpu"):
    """A head on ``n`` procedural test-world scenes (exact masks), per class -> SeenUnseen."""
    from protodb.grounded.compose import parse_prompt
    from protodb.grounded.grounding import make_example
    from protodb.grounded.sampling import load_pipeline
    from protodb.profiles import test_world

    world = test_world()
    names = list(world.class_names)
    pipe = load_pipeline(generator, device)
    inter: dict[str, int] = {}
    union: dict[str, int] = {}
    for i in range(n):
        scene = world.draw_training_scene(np.random.default_rng([seed, i, 104729]))
        comp = parse_prompt(scene.caption, names)
        truth = np.stack([scene.masks[e.name] for e in comp.entities])
        ex = make_example(pipe, scene.image, comp, truth, head.config.timestep)
        prob = head.predict(ex.feats, ex.positions, scene.image.shape[:2])
        from protodb.grounded.entity_masks import resolve_overlaps

        pred = resolve_overlaps(prob > 0.5, prob)
        for name, p, t in zip(ex.names, pred, truth, strict=True):
            inter[name] = inter.get(name, 0) + int((p & t).sum())
            union[name] = union.get(name, 0) + int((p | t).sum())
    ious = {k: inter[k] / u for k, u in union.items() if u}
    return SeenUnseen(ious, list(head.info.get("seen", [])))
