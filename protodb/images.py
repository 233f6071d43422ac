"""Image I/O: reading user images with clear errors, PNG bytes for the bank, palettes."""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from protodb.errors import NotFoundError, ProtodbError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _read(path: str | Path, decode: bool) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"image {str(p)!r} does not exist; check the path")
    if p.is_dir():
        raise ProtodbError(f"{str(p)!r} is a directory; pass image files")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy() if decode else None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ProtodbError(
            f"cannot read image {str(p)!r} ({err}); give a PNG, JPEG or other image PIL can open"
        ) from None


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 [H, W, 3] RGB. Raises a ProtodbError naming the file."""
    return _read(path, decode=True)


def check_image(path: str | Path) -> None:
    """Raise load_rgb's error for a missing or unidentifiable image, reading only its header."""
    _read(path, decode=False)


def expand_inputs(paths: list[str | Path]) -> list[Path]:
    """Files as given, directories expanded to their images (sorted). Missing paths raise."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise NotFoundError(
                    f"directory {str(p)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})"
                )
            out.extend(found)
        elif not p.exists():
            raise NotFoundError(f"image {str(p)!r} does not exist; check the path")
        else:
            out.append(p)
    return out


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 [H, W, 3] RGB or bool [H, W] (saved 1-bit) -> PNG bytes."""
    from PIL import Image

    im = (
        Image.fromarray(array.astype(bool)).convert("1")
        if array.dtype == bool
        else Image.fromarray(array)
    )
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def decode_png(data: bytes, mode: str = "RGB") -> np.ndarray:
    """PNG bytes -> uint8 [H, W, 3] (mode "RGB") or bool [H, W] (mode "1")."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if mode == "1":
            return np.asarray(im.convert("L")) > 0
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def palette(n: int = 256) -> list[int]:
    """The PASCAL VOC colour map: flat [r, g, b] * n, index 0 black (background)."""
    pal = []
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files, directories and glob patterns -> image files (a pattern that matches nothing, or
    a missing path, raises NotFoundError)."""
    out: list[str | Path] = []
    for raw in paths:
        text = str(raw)
        if any(c in text for c in "*?[") and not Path(text).exists():
            found = sorted(
                p for p in glob.glob(text, recursive=True) if p.lower().endswith(IMAGE_SUFFIXES)
            )
            if not found:
                raise NotFoundError(f"pattern {text!r} matches no image; check the pattern")
            out.extend(found)
        else:
            out.append(raw)
    return expand_inputs(out)
