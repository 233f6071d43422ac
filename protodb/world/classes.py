"""The test world's classes: four things, four stuff classes and clutter textures that belong to
no class, with the world's version and sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from protodb.errors import ProtodbError
from protodb.names import class_key

WORLD = "world"
WORLD_VERSION = "world-1"  # bump when the drawing or the features change
LABEL = "offline test world (synthetic classes, procedural generator and extractor)"
SUPPORT_SIZE = 64
ATTN_STRIDE = 4  # attribution grid = image / 4 (SD's is / 8 at 512 px; 64 px needs finer)
SCENE_HW = (96, 128)


@dataclass(frozen=True)
class WorldClass:
    """A synthetic class. kind: "thing" or "stuff"; colour: RGB 0-255; texture: the name of a
    texture drawer; shape: thing outline ("disc", "star", "square", "triangle") or None."""

    name: str
    kind: str
    colour: tuple[int, int, int]
    texture: str
    shape: str | None = None


THINGS = (
    WorldClass("red disc", "thing", (205, 35, 40), "smooth", "disc"),
    WorldClass("yellow star", "thing", (235, 205, 35), "smooth", "star"),
    WorldClass("purple square", "thing", (125, 45, 170), "checker", "square"),
    WorldClass("orange triangle", "thing", (245, 135, 25), "stripes", "triangle"),
)
STUFF = (
    WorldClass("grass", "stuff", (55, 145, 50), "blades"),
    WorldClass("sky", "stuff", (125, 180, 240), "gradient"),
    WorldClass("sand", "stuff", (215, 190, 135), "speckle"),
    WorldClass("water", "stuff", (30, 70, 150), "waves"),
)
CLUTTER = (
    WorldClass("concrete", "clutter", (120, 120, 118), "speckle"),
    WorldClass("wood", "clutter", (105, 70, 45), "stripes"),
    WorldClass("plaster", "clutter", (200, 196, 205), "smooth"),
)
CLASSES = THINGS + STUFF
CLASS_NAMES = [c.name for c in CLASSES]
_BY_KEY = {class_key(c.name): c for c in CLASSES}


def world_class(name: str) -> WorldClass:
    """The world class called ``name`` (case-insensitive); ProtodbError listing them if none."""
    try:
        return _BY_KEY[class_key(name)]
    except KeyError:
        raise ProtodbError(
            f"class {name!r} is not in the offline test world; its classes are: "
            f"{', '.join(CLASS_NAMES)} (use --profile default or tiny for other classes)"
        ) from None
