"""The contact sheet of support sets (protodb.synthesis.sheet)."""

import numpy as np
import pytest
from PIL import Image

from protodb.bank.store import open_bank
from protodb.errors import NotFoundError
from protodb.synthesis.sheet import LABEL_W, TILE, contact_sheet, support_rows


def test_sheet_has_three_rows_per_class_and_a_column_per_image(tiny_bank, tmp_path):
    path = tiny_bank.db.sheet(tmp_path / "s.png", n=3)
    with Image.open(path) as im:
        assert im.size == (LABEL_W + 3 * TILE, 2 * 3 * TILE)
    name, (images, heats, tinted) = support_rows(tiny_bank.db.bank, "red apple", 3)
    assert name == "red apple" and len(images) == len(heats) == len(tinted) == 3
    assert heats[0].dtype == np.uint8 and heats[0].shape == images[0].shape
    assert not np.array_equal(tinted[0], images[0])  # the masks are drawn


def test_sheet_of_one_class_and_its_errors(tiny_bank, tmp_path):
    path = contact_sheet(tiny_bank.db.bank, ["grass"], tmp_path / "g.png", n=2)
    with Image.open(path) as im:
        assert im.size == (LABEL_W + 2 * TILE, 3 * TILE)
    with pytest.raises(NotFoundError, match="class 'sky' has no prototype set"):
        contact_sheet(tiny_bank.db.bank, ["sky"], tmp_path / "x.png")
    with pytest.raises(NotFoundError, match="holds no classes"):
        contact_sheet(open_bank(str(tmp_path / "empty")), None, tmp_path / "y.png")
