"""A fast student distilled from a vocabulary: a small SegFormer trained on a synthetic dataset.

Choice: transformers' ``SegformerForSemanticSegmentation`` (hierarchical transformer encoder +
all-MLP decoder): one forward pass per image at any size, no windows and no prototype matching,
saved and loaded in its library's own format (``save_pretrained``: config.json +
model.safetensors). Its usual start is ImageNet-pretrained MiT-b0 weights; no weights can be
downloaded here, so the student is a MiT-b0-shaped encoder at a quarter of the width (16-128
channels, one block per stage, ~0.4 M parameters) trained from scratch, which is enough for the
test world's colours and textures and says nothing about real images.

Training (:func:`distill`): the images and label PNGs of a dataset written by ``protodb synth``
(label i = the vocabulary's class i), random horizontal flips, cross-entropy (255 ignored) on
logits upsampled to the labels, AdamW. ``student.json`` beside the model records the vocabulary
(name and bank version) and the dataset (its synth.json settings) it came from.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protodb.errors import NotFoundError, ProtodbError
from protodb.progress import Progress

RECORD = "student.json"


def student_config(n_labels: int):
    from transformers import SegformerConfig

    return SegformerConfig(
        num_channels=3,
        num_encoder_blocks=4,
        depths=[1, 1, 1, 1],
        sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[16, 32, 64, 128],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2],
        num_attention_heads=[1, 2, 4, 8],
        mlp_ratios=[4, 4, 4, 4],
        decoder_hidden_size=64,
        num_labels=n_labels,
        semantic_loss_ignore_index=255,
    )


def _tensor(images: np.ndarray):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


class Student:
    """A trained student: ``model`` (SegformerForSemanticSegmentation), ``classes`` (label i =
    classes[i - 1]) and ``record`` (student.json)."""

    def __init__(self, model, classes: list[str], record: dict) -> None:
        self.model = model.eval()
        self.classes = list(classes)
        self.record = record

    @classmethod
    def load(cls, path: str | os.PathLike) -> Student:
        from transformers import SegformerForSemanticSegmentation

        from protodb.models.loading import quiet_loading

        quiet_loading()
        root = Path(path)
        if not (root / RECORD).is_file():
            raise NotFoundError(
                f"--student {str(root)!r} holds no student ({RECORD}); make one with "
                "`protodb distill`"
            )
        record = json.loads((root / RECORD).read_text("utf-8"))
        model = SegformerForSemanticSegmentation.from_pretrained(str(root))
        return cls(model, record["classes"], record)

    def save(self, path: str | os.PathLike) -> Path:
        from protodb.models.loading import quiet_loading

        quiet_loading()
        root = Path(path)
        self.model.save_pretrained(str(root), safe_serialization=True)
        (root / RECORD).write_text(json.dumps(self.record, indent=2, sort_keys=True) + "\n")
        return root

    def segment(self, image: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3] -> uint8 [H, W] labels (0 = background, i = classes[i - 1])."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            logits = self.model(pixel_values=_tensor(image[None])).logits
            up = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
        return up[0].argmax(0).numpy().astype(np.uint8)


@dataclass
class DistillReport:
    out: str
    vocab: str
    images: int
    steps: int
    loss_first: float
    loss_last: float
    seconds: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def distill(
    runtime,
    *,
    vocab: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    steps: int = 300,
    batch: int = 8,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool | Progress = True,
) -> DistillReport:
    """Train a student on the synth dataset ``data`` for vocabulary ``vocab`` and save it;
    ``runtime``: the session (protodb.runtime.Runtime), whose bank records the student."""
    import torch
    from transformers import SegformerForSemanticSegmentation

    from protodb.evaluation.datasets import open_dataset

    if steps < 1 or batch < 1:
        raise ProtodbError(f"--steps {steps} and --batch {batch} must be >= 1")
    info = runtime.vocab(vocab).info
    root = Path(data)
    if not (root / "synth.json").is_file():
        raise NotFoundError(f"--data {str(root)!r} is no synthetic dataset; make one with "
                            "`protodb synth`")  # fmt: skip
    ds = open_dataset("folder", root)
    if ds.classes[1:] != info.class_names:
        raise ProtodbError(
            f"--data {str(root)!r} has classes {ds.classes[1:]} but vocabulary {vocab!r} has "
            f"{info.class_names}; make the dataset with --vocab {vocab}"
        )
    pairs = [ds.load(s) for s in ds.samples]
    images = np.stack([p[0] for p in pairs])
    labels = np.stack([p[1] for p in pairs]).astype(np.int64)
    torch.manual_seed(seed)
    model = SegformerForSemanticSegmentation(student_config(len(ds.classes)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    start = time.perf_counter()
    model.train()
    with Progress.of(progress).bar("distill", steps, "step") as bar:
        for _ in range(steps):
            idx = rng.integers(len(images), size=batch)
            x, y = images[idx], labels[idx]
            flip = rng.random(batch) < 0.5
            x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
            y = np.where(flip[:, None, None], y[:, :, ::-1], y)
            loss = model(pixel_values=_tensor(x), labels=torch.from_numpy(y)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            bar.update(1)
    record = {
        "classes": info.class_names,
        "vocab": info.name,
        "vocab_bank_version": info.bank_version,
        "data": str(root),
        "data_settings": json.loads((root / "synth.json").read_text("utf-8")),
        "images": len(images),
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "seed": seed,
        "architecture": "SegformerForSemanticSegmentation (MiT-b0 shape at 1/4 width, scratch)",
    }
    Student(model, info.class_names, record).save(out)
    _record_in_bank(runtime.bank, out, record)
    return DistillReport(
        str(out), info.name, len(images), steps,
        float(np.mean(losses[:10])), float(np.mean(losses[-10:])),
        time.perf_counter() - start,
    )  # fmt: skip


def _record_in_bank(bank, out: str | os.PathLike, record: dict) -> None:
    """A ``distill`` history row in the bank: which student (its directory and the sha256 of its
    weights) came from which vocabulary at which bank version (``protodb history`` lists it)."""
    import hashlib

    weights = Path(out) / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else ""
    bank.log(
        "distill",
        {
            "vocab": record["vocab"],
            "vocab_bank_version": record["vocab_bank_version"],
            "student": str(Path(out).resolve()),
            "student_sha256": digest,
            "images": record["images"],
            "steps": record["steps"],
        },
    )


def evaluate_student(
    path: str | os.PathLike,
    dataset,
    split=None,
    *,
    vocab: str | None = None,
    ablations: Sequence[str] = (),
    progress: bool = True,
):
    """mIoU of the student saved in ``path`` (as :func:`distill` writes it) on ``dataset`` (a
    protodb.evaluation.datasets.Dataset), like ``protodb eval`` for a vocabulary: the student's
    label i is mapped to the dataset's class of the same name, confusions accumulated over the
    dataset (protodb.evaluation.evaluate). ``split``: a protodb.evaluation.zs3.Split for the
    seen / unseen / hIoU figures; ``vocab``: when given, the vocabulary the student must come
    from; ``ablations``: refused (they remove parts of the query engine, which a student has
    not). Returns an EvalReport whose ``config`` is the student's record
    (its directory, vocabulary, training settings) and ``vocab`` the vocabulary it came from."""
    import sys

    from tqdm.auto import tqdm

    from protodb.evaluation.evaluate import EvalReport, MIoU, class_table, label_map
    from protodb.evaluation.zs3 import attach

    if ablations:
        raise ProtodbError(
            f"--ablate {','.join(ablations)}: a student has no query engine to ablate; drop "
            "--ablate, or evaluate the vocabulary (--vocab without --student)"
        )
    start = time.perf_counter()
    student = Student.load(path)
    if vocab is not None:
        StudentHandle(student, vocab)  # refuses a student of another vocabulary
    vocab = student.record.get("vocab", "")
    hint = "distill a student from a vocabulary over the dataset's classes"
    lut = label_map(student.classes, dataset, what="the student's", hint=hint)
    meter = MIoU(len(dataset.classes))
    for sample in tqdm(dataset.samples, desc=f"eval {dataset.name} (student)", unit="img",
                       disable=not progress, file=sys.stderr, leave=False):  # fmt: skip
        image, gt = dataset.load(sample)
        meter.update(lut[student.segment(image)], gt)
    skip = ("classes", "data_settings")  # the label names are the table; the data is named
    config = {"student": str(Path(path).resolve())}
    config.update({k: v for k, v in student.record.items() if k not in skip})
    report = EvalReport(
        dataset=dataset.name, root=str(dataset.root), vocab=vocab, n_images=len(dataset),
        miou=meter.miou(), pixel_accuracy=meter.pixel_accuracy(),
        classes=class_table(meter, dataset.classes), config=config,
        seconds=time.perf_counter() - start, test_world=dataset.test_world,
        notes=[f"student {str(path)!r} of vocabulary {vocab!r}, not its prototypes"],
    )  # fmt: skip
    return attach(report, split)


class StudentHandle:
    """A student in place of a vocabulary's handle for protodb.query.batch.segment_files:
    ``segment(image)`` returns a protodb.query.segment.SegmentResult whose scores are the
    student's class probabilities (float32 [1 + C, H, W] in [0, 1])."""

    def __init__(self, student: Student, vocab: str) -> None:
        if student.record.get("vocab") != vocab:
            raise ProtodbError(
                f"the student was distilled from vocabulary {student.record.get('vocab')!r}, "
                f"not {vocab!r}; pass --vocab {student.record.get('vocab')}"
            )
        self.student = student
        self.vocab = vocab

    def segment(self, image: np.ndarray, progress=None):
        import torch
        import torch.nn.functional as F

        from protodb.query.segment import SegmentResult

        with torch.inference_mode():
            logits = self.student.model(pixel_values=_tensor(image[None])).logits
            up = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
            prob = up[0].softmax(0)
        return SegmentResult(
            vocab=self.vocab,
            classes=self.student.classes,
            labels=prob.argmax(0).numpy().astype(np.uint8),
            scores=prob.numpy().astype(np.float32),
        )
