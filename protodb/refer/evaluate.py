"""Evaluation of referring segmentation: mIoU, oIoU and Pr@0.5..0.9 with a per-expression
report (REFERENCE 2), on a folder of expressions or RefCOCO / RefCOCO+ / RefCOCOg.

Dataset forms (``--root DIR``):

- ``folder``: ``images/``, ``masks/<id>.png`` (the referent, any non-zero pixel), and
  ``expressions.jsonl``, one ``{"id", "image", "expression"}`` a line (``image`` relative to
  the root, else to images/; an optional ``"mask"`` path, relative to the root, else to
  masks/, replaces masks/<id>.png; a row whose image or mask is in neither place is refused
  when the set is read).
  The test world's referring set (``pairs.jsonl`` with explicit masks) reads the same.
- ``refcoco`` / ``refcoco+`` / ``refcocog``, JSON: the refer toolkit's layout with its pickle
  converted to JSON: ``refs(unc).json`` (``refs(umd).json`` for refcocog; ``refs.json`` also
  read): a list of refs ``{"ref_id", "ann_id", "image_id", "split", "sentences": [{"sent"}]}``,
  ``instances.json`` (COCO: images and annotations with polygon or RLE segmentation) and the
  COCO images in ``images/`` or ``train2014/``.
- the same, parquet: ``*.parquet`` files (pyarrow), one row per ref or expression, with an
  image (``image`` struct with ``bytes`` or ``path``, or ``file_name`` / ``image_path`` in
  images/ or train2014/), the expression(s) (``sentences``: strings or ``{"sent"}`` /
  ``{"raw"}``, or ``expression`` / ``sentence``), the mask (``mask`` or ``segmentation``:
  COCO RLE or polygons, or ``raw_anns`` JSON with ``segmentation``) and optionally ``split``.
- the original pickle (``refs(unc).p``) is refused: unpickling a downloaded file can run code.

IoU: per expression |P & G| / |P | G| (1 when both are empty); mIoU: their
mean; oIoU: the sum of intersections over the sum of unions; Pr@t: the share with IoU > t.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from protodb.errors import NotFoundError, ProtodbError

DATASETS = ("folder", "refcoco", "refcoco+", "refcocog")
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
REFS_FILES = {
    "refcoco": ("refs(unc).json", "refs.json"),
    "refcoco+": ("refs(unc).json", "refs.json"),
    "refcocog": ("refs(umd).json", "refs(google).json", "refs.json"),
}
PICKLE_MESSAGE = (
    "is RefCOCO's original pickle, which protodb does not read (unpickling a downloaded file "
    "can run code); use its JSON form (refs(unc).json beside instances.json, e.g. converted "
    "once with json.dump(pickle.load(f)) on a machine you trust) or a parquet conversion from "
    "the Hugging Face hub"
)


@dataclass
class RefItem:
    """One expression to evaluate: ``image()`` -> uint8 [H, W, 3], ``mask(hw)`` -> bool
    [H, W] (the referent), an id, the image's name and the expression."""

    id: str
    image_name: str
    expression: str
    image: Callable[[], np.ndarray]
    mask: Callable[[tuple[int, int]], np.ndarray]


# ------------------------------------------------------------------ masks


def decode_rle_string(counts: str) -> list[int]:
    """COCO's compressed RLE string -> run lengths (the inverse of protodb.query.outputs'
    rle_string)."""
    out: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def rle_to_mask(rle: dict) -> np.ndarray:
    """{"size": [H, W], "counts": str or list} -> bool [H, W] (column-major runs, 0-run
    first)."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    runs = decode_rle_string(counts) if isinstance(counts, str) else list(counts)
    flat = np.zeros(h * w, bool)
    pos, value = 0, False
    for r in runs:
        if value:
            flat[pos : pos + r] = True
        pos += r
        value = not value
    return flat.reshape((w, h)).T


def polygons_to_mask(polygons: list, hw: tuple[int, int]) -> np.ndarray:
    """COCO polygons ([[x0, y0, x1, y1, ...], ...]) -> bool [H, W] (filled, PIL)."""
    from PIL import Image, ImageDraw

    h, w = hw
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        pts = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]
        if len(pts) >= 3:
            draw.polygon(pts, fill=1, outline=1)
    return np.asarray(canvas, bool)


def segmentation_to_mask(seg, hw: tuple[int, int]) -> np.ndarray:
    """A COCO segmentation (polygon list, RLE dict, or a JSON string of either) -> bool [H, W]."""
    if isinstance(seg, str):
        seg = json.loads(seg)
    if isinstance(seg, dict):
        return rle_to_mask(seg)
    if isinstance(seg, list | tuple) and seg and not isinstance(seg[0], list | tuple):
        seg = [seg]  # one flat polygon
    return polygons_to_mask(list(seg), hw)


# ------------------------------------------------------------------ datasets


def _refuse_pickles(root: Path) -> None:
    if root.is_file() and root.suffix in (".p", ".pkl", ".pickle"):
        raise ProtodbError(f"{str(root)!r} {PICKLE_MESSAGE}")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtodbError(
            f"{str(path)!r} is not readable JSON ({type(err).__name__}); re-download or "
            "re-convert it"
        ) from None


def _load_png_mask(path: Path) -> Callable[[tuple[int, int]], np.ndarray]:
    def load(hw):
        from PIL import Image

        if not path.is_file():
            raise NotFoundError(f"mask {str(path)!r} does not exist")
        m = np.asarray(Image.open(path).convert("L")) > 0
        if m.shape != tuple(hw):
            raise ProtodbError(f"mask {str(path)!r} is {m.shape}, its image {tuple(hw)}")
        return m

    return load


def _image_loader(path: Path) -> Callable[[], np.ndarray]:
    from protodb.images import load_rgb

    return lambda: load_rgb(path, exif=False)  # stored pixel order, as its mask is drawn


def _locate(root: Path, folder: str, name: str, what: str, where: str) -> Path:
    """A row's ``image`` / ``mask`` file: ``root/name`` when it is a file, else
    ``root/folder/name``; neither raises NotFoundError naming the row and both places."""
    for path in (root / name, root / folder / name):
        if path.is_file():
            return path
    raise NotFoundError(
        f"{where}: {what} {name!r} is neither at {str(root / name)!r} nor at "
        f"{str(root / folder / name)!r}; fix the row's {what!r} path"
    )


def folder_items(root: Path) -> list[RefItem]:
    """The items of a ``folder`` dataset (module docstring)."""
    listing = root / "expressions.jsonl"
    if not listing.is_file() and (root / "pairs.jsonl").is_file():
        listing = root / "pairs.jsonl"
    if not listing.is_file():
        raise NotFoundError(
            f"{str(root)!r} has no expressions.jsonl; a folder dataset holds images/, "
            'masks/<id>.png and expressions.jsonl ({"id", "image", "expression"} a line)'
        )
    items = []
    for n, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image, expression = str(row["image"]), str(row["expression"])
        except (ValueError, KeyError, TypeError):
            raise ProtodbError(
                f"{listing}:{n} must be a JSON object with 'image' and 'expression' (and 'id')"
            ) from None
        image_path = _locate(root, "images", image, "image", f"{listing}:{n}")
        if "mask" in row:
            mask_path = _locate(root, "masks", str(row["mask"]), "mask", f"{listing}:{n}")
            rid = str(row.get("id") or Path(row["mask"]).stem)
        else:
            if "id" not in row:
                raise ProtodbError(f"{listing}:{n} needs an 'id' (its mask is masks/<id>.png)")
            rid = str(row["id"])
            mask_path = root / "masks" / f"{rid}.png"
        items.append(
            RefItem(rid, image, expression, _image_loader(image_path), _load_png_mask(mask_path))
        )
    return items


def _coco_image_path(root: Path, file_name: str) -> Path:
    for folder in ("images", "train2014", "val2014", ""):
        p = root / folder / file_name if folder else root / file_name
        if p.is_file():
            return p
    return root / "images" / file_name  # missing: load_rgb says so when it is read


def _sentences(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    out = []
    for s in value:
        if isinstance(s, dict):
            s = s.get("sent") or s.get("raw") or ""
        if str(s).strip():
            out.append(str(s))
    return out


def refcoco_json_items(root: Path, dataset: str, split: str) -> list[RefItem]:
    """The items of the JSON form (module docstring), expressions of ``split`` only."""
    refs_path = next((root / n for n in REFS_FILES[dataset] if (root / n).is_file()), None)
    if refs_path is None:
        raise NotFoundError(
            f"{str(root)!r} has no {' or '.join(REFS_FILES[dataset])} with instances.json"
        )
    inst_path = root / "instances.json"
    if not inst_path.is_file():
        raise NotFoundError(f"{str(root)!r} has {refs_path.name} but no instances.json beside it")
    refs = _read_json(refs_path)
    inst = _read_json(inst_path)
    try:
        images = {im["id"]: im for im in inst["images"]}
        anns = {a["id"]: a for a in inst["annotations"]}
    except (KeyError, TypeError):
        raise ProtodbError(
            f"{str(inst_path)!r} must be COCO instances JSON (images and annotations)"
        ) from None
    items = []
    for ref in refs:
        try:
            if ref.get("split", split) != split:
                continue
            ann = anns[ref["ann_id"]]
            im = images[ref["image_id"]]
            hw = (int(im["height"]), int(im["width"]))
        except (KeyError, TypeError, AttributeError):
            raise ProtodbError(
                f"{str(refs_path)!r}: a ref without a known ann_id / image_id ({str(ref)[:80]})"
            ) from None
        path = _coco_image_path(root, im["file_name"])
        seg = ann["segmentation"]
        for k, sent in enumerate(_sentences(ref.get("sentences"))):
            items.append(
                RefItem(
                    f"{ref.get('ref_id', ref['ann_id'])}_{k}",
                    im["file_name"],
                    sent,
                    _image_loader(path),
                    lambda _hw, seg=seg, hw=hw: segmentation_to_mask(seg, hw),
                )
            )
    return items


def _parquet_files(root: Path) -> list[Path]:
    """The parquet files of a dataset folder: ``*.parquet`` in it or in its ``data/`` (the
    Hugging Face layout); never a deep search (a --root of a large tree stays fast)."""
    return sorted(root.glob("*.parquet")) + sorted(root.glob("data/*.parquet"))


def refcoco_parquet_items(root: Path, split: str) -> list[RefItem]:
    """The items of the parquet form (module docstring)."""
    import pyarrow.parquet as pq

    files = [root] if root.is_file() else _parquet_files(root)
    items = []
    for f in files:
        try:
            rows = pq.read_table(f).to_pylist()
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a bad file
            raise ProtodbError(
                f"{str(f)!r} is not readable parquet ({type(err).__name__}); re-download it"
            ) from None
        for i, row in enumerate(rows):
            if "split" in row and row["split"] not in (None, split):
                continue
            items.extend(_parquet_row(root, f, i, row))
    return items


def _parquet_row(root: Path, f: Path, i: int, row: dict) -> list[RefItem]:
    from PIL import Image

    from protodb.images import to_rgb

    image = row.get("image")
    name = row.get("file_name") or row.get("image_path") or f"{f.stem}_{i}"
    if isinstance(image, dict) and image.get("bytes"):
        data = image["bytes"]

        def load_image(data=data):
            with Image.open(io.BytesIO(data)) as im:
                return to_rgb(im)

    else:
        path = (image or {}).get("path") if isinstance(image, dict) else None
        load_image = _image_loader(_coco_image_path(root, str(path or Path(str(name)).name)))
    sentences = _sentences(row.get("sentences")) or _sentences(
        row.get("expression") or row.get("sentence") or row.get("captions")
    )
    seg = row.get("mask") or row.get("segmentation")
    if seg is None and row.get("raw_anns"):
        raw = row["raw_anns"]
        seg = (json.loads(raw) if isinstance(raw, str) else raw).get("segmentation")
    if seg is None or not sentences:
        raise ProtodbError(
            f"{str(f)!r} row {i} has no expression (sentences / expression) or no mask "
            "(mask / segmentation / raw_anns); see protodb.refer.evaluate for the forms read"
        )
    rid = str(row.get("ref_id", row.get("id", f"{f.stem}_{i}")))
    return [
        RefItem(
            f"{rid}_{k}",
            str(name),
            s,
            load_image,
            lambda hw, seg=seg: segmentation_to_mask(seg, hw),
        )
        for k, s in enumerate(sentences)
    ]


def open_refer_dataset(dataset: str, root, *, split: str = "val", limit: int | None = None):
    """The items of a referring dataset (``dataset`` in DATASETS) at ``root``."""
    if dataset not in DATASETS:
        raise ProtodbError(
            f"referring dataset {dataset!r} is unknown; use one of {', '.join(DATASETS)}"
        )
    root = Path(root)
    _refuse_pickles(root)
    if not root.exists():
        raise NotFoundError(f"dataset root {str(root)!r} does not exist; check --root")
    if dataset == "folder":
        items = folder_items(root)
    elif (
        root.is_file()
        and root.suffix == ".parquet"
        or (root.is_dir() and bool(_parquet_files(root)))
    ):
        items = refcoco_parquet_items(root, split)
    elif root.is_dir() and any((root / n).is_file() for n in REFS_FILES[dataset]):
        items = refcoco_json_items(root, dataset, split)
    else:
        pickles = sorted(p.name for p in root.glob("*.p")) if root.is_dir() else []
        if pickles:
            raise ProtodbError(f"{str(root / pickles[0])!r} {PICKLE_MESSAGE}")
        raise NotFoundError(
            f"{str(root)!r} holds no {dataset} annotations: put refs(unc).json and "
            "instances.json there (JSON form) or *.parquet files, there or in data/ (parquet form)"
        )
    if not items:
        raise ProtodbError(f"{str(root)!r} has no expression in split {split!r}")
    return items[:limit] if limit else items


# ------------------------------------------------------------------ metrics


@dataclass
class ReferEvalReport:
    """miou, oiou: fractions; precision: "Pr@0.5" ... -> fraction with IoU > t;
    best_proposal_miou: the mean over expressions of the best proposal's IoU (what a perfect
    chooser would reach); rows: one dict per expression (id, image, expression, subject, iou,
    best_proposal_iou, intersection, union, source);
    seconds: mean seconds per expression by stage."""

    dataset: str
    root: str
    n: int
    miou: float
    oiou: float
    precision: dict[str, float]
    best_proposal_miou: float = 0.0
    rows: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def iou_parts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(intersection, union) pixel counts of two bool masks."""
    return int(np.logical_and(pred, truth).sum()), int(np.logical_or(pred, truth).sum())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    i, u = iou_parts(a, b)
    return i / u if u else 1.0


def summarise(ious: list[float], inter: list[int], union: list[int]) -> tuple:
    """(mIoU, oIoU, {"Pr@t": share with IoU > t})."""
    miou = float(np.mean(ious)) if ious else 0.0
    oiou = float(sum(inter) / sum(union)) if sum(union) else 0.0
    prec = {f"Pr@{t:.1f}": float(np.mean([i > t for i in ious])) if ious else 0.0
            for t in THRESHOLDS}  # fmt: skip
    return miou, oiou, prec


def evaluate_refer(
    referrer, items: list[RefItem], *, dataset: str, root, progress=False
) -> ReferEvalReport:
    """Refer every item and compare with its mask (module docstring)."""
    from protodb.progress import Progress

    rows, ious, inter, union, best_ious = [], [], [], [], []
    seconds: dict[str, float] = {}
    bars = Progress.of(progress)
    with bars.bar("expressions", total=len(items), unit="expr") as bar:
        for item in items:
            image = item.image()
            t = time.perf_counter()
            r = referrer.refer(image, item.expression)
            wall = time.perf_counter() - t
            truth = item.mask(image.shape[:2])
            i, u = iou_parts(r.mask, truth)
            iou = i / u if u else 1.0
            best = max(_iou(p.mask, truth) for p in r.proposals)
            best_ious.append(best)
            ious.append(iou)
            inter.append(i)
            union.append(u)
            for k, v in {**r.seconds, "total": wall}.items():
                seconds[k] = seconds.get(k, 0.0) + v
            rows.append(
                {
                    "id": item.id,
                    "image": item.image_name,
                    "expression": item.expression,
                    "subject": r.subject.word,
                    "subject_method": r.subject.method,
                    "iou": round(iou, 6),
                    "best_proposal_iou": round(best, 6),
                    "intersection": i,
                    "union": u,
                    "source": r.proposals[r.chosen].source,
                    "bank_class": r.bank_class,
                }
            )
            bar.update(1)
    miou, oiou, prec = summarise(ious, inter, union)
    n = len(items)
    return ReferEvalReport(
        dataset=dataset,
        root=str(root),
        n=n,
        miou=miou,
        oiou=oiou,
        precision=prec,
        best_proposal_miou=float(np.mean(best_ious)) if best_ious else 0.0,
        rows=rows,
        seconds={k: v / max(n, 1) for k, v in seconds.items()},
        config=referrer.config.to_dict(),
    )
