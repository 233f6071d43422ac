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


MAX_PIXELS = 64_000_000  # default limit of one input image (64 MP); PROTODB_MAX_PIXELS changes it
ENV_MAX_PIXELS = "PROTODB_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit of one input image: $PROTODB_MAX_PIXELS, else 64 million."""
    raw = os.environ.get(ENV_MAX_PIXELS, "")
    if not raw:
        return MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ProtodbError(f"{ENV_MAX_PIXELS}={raw!r} must be a whole number of pixels >= 1")
    return value


def to_rgb(im) -> np.ndarray:
    """A PIL image as a person sees it, uint8 [H, W, 3]: 16-bit (and 32-bit integer) grey
    scaled to 8 bits, not clipped; transparency composited over white; everything else through
    PIL's own conversion (palette, CMYK, grey, ...)."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(im, dtype=np.float64)
        top = 65535.0 if grey.max(initial=0) > 255 or im.mode.startswith("I;16") else 255.0
        grey = np.clip(np.round(grey * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8).copy()
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _read(path: str | Path, decode: bool, exif: bool = True) -> np.ndarray | None:
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"image {str(p)!r} does not exist; check the path")
    if p.is_dir():
        raise ProtodbError(f"{str(p)!r} is a directory; pass image files")
    limit = max_pixels()
    try:
        with Image.open(p) as im:
            w, h = im.size  # from the header: nothing decoded yet
            if w * h > limit:
                raise ProtodbError(
                    f"image {str(p)!r} is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of "
                    f"{limit / 1e6:g} MP; resize it, or raise {ENV_MAX_PIXELS}"
                )
            if not decode:
                return None
            if not exif:  # stored pixel order: what a benchmark's labels are drawn on
                return to_rgb(im)
            return to_rgb(ImageOps.exif_transpose(im))  # the orientation a viewer shows
    except Image.DecompressionBombError:
        raise ProtodbError(
            f"image {str(p)!r} is over PIL's decompression-bomb size (more than about 179 MP); "
            "resize it"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ProtodbError(
            f"cannot read image {str(p)!r} ({err}); give a PNG, JPEG or other image PIL can open"
        ) from None


def load_rgb(path: str | Path, *, exif: bool = True) -> np.ndarray:
    """Read an image file as uint8 [H, W, 3] RGB, as a person sees it (EXIF orientation,
    16-bit scaled, transparency over white), after checking its size against the pixel limit
    from its header. Raises a ProtodbError naming the file (missing, unreadable, truncated, too
    large).

    exif: apply the EXIF Orientation tag (right for a user's photo). False: the pixels in the
    order the file stores them, as a benchmark's label maps are drawn (the evaluation and
    referring-set readers)."""
    return _read(path, decode=True, exif=exif)


def check_image(path: str | Path) -> None:
    """Raise load_rgb's error for a missing, unidentifiable or too large image, reading only
    its header."""
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
