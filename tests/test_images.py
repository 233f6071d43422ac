import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from protodb.errors import NotFoundError, ProtodbError
from protodb.images import IMAGE_SUFFIXES, decode_png, expand_inputs, load_rgb, palette, png_bytes


def test_load_rgb_png_and_modes(tmp_path):
    img = make_image(12, 17)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (12, 17, 3)
    np.testing.assert_array_equal(out, img)
    Image.fromarray(img[..., 0]).save(tmp_path / "gray.png")
    gray = load_rgb(str(tmp_path / "gray.png"))
    assert gray.shape == (12, 17, 3)
    np.testing.assert_array_equal(gray[..., 2], img[..., 0])
    rgba = np.dstack([img, np.full((12, 17), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert load_rgb(tmp_path / "rgba.png").shape == (12, 17, 3)


def test_load_rgb_jpeg(tmp_path):
    Image.fromarray(make_image(16, 16)).save(tmp_path / "a.jpg", quality=95)
    assert load_rgb(tmp_path / "a.jpg").shape == (16, 16, 3)


def test_load_rgb_missing_file(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(NotFoundError, match="nope.png.*does not exist"):
        load_rgb(missing)


def test_load_rgb_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not a picture")
    with pytest.raises(ProtodbError, match="cannot read image .*notes.png"):
        load_rgb(p)


def test_load_rgb_truncated_image(tmp_path):
    p = tmp_path / "cut.png"
    data = png_bytes(make_image(40, 40))
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ProtodbError, match="cut.png"):
        load_rgb(p)


def test_load_rgb_directory(tmp_path):
    with pytest.raises(ProtodbError, match="is a directory"):
        load_rgb(tmp_path)


def test_expand_inputs(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("b.PNG", "a.jpg", "c.txt"):
        (d / name).write_bytes(b"x")
    single = tmp_path / "single.webp"
    single.write_bytes(b"x")
    assert expand_inputs([d, str(single)]) == [d / "a.jpg", d / "b.PNG", single]
    assert ".png" in IMAGE_SUFFIXES


def test_expand_inputs_errors(tmp_path):
    with pytest.raises(NotFoundError, match="missing.png"):
        expand_inputs([tmp_path / "missing.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError, match="holds no images"):
        expand_inputs([empty])


def test_png_round_trips():
    img = make_image(9, 11)
    np.testing.assert_array_equal(decode_png(png_bytes(img)), img)
    mask = np.zeros((9, 11), bool)
    mask[2:5, 3] = True
    mask[8, 10] = True
    data = png_bytes(mask)
    back = decode_png(data, "1")
    assert back.dtype == bool
    np.testing.assert_array_equal(back, mask)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_palette_voc_colours():
    pal = palette()
    assert len(pal) == 768
    colours = np.asarray(pal).reshape(-1, 3)
    assert colours[:6].tolist() == [
        [0, 0, 0],
        [128, 0, 0],
        [0, 128, 0],
        [128, 128, 0],
        [0, 0, 128],
        [128, 0, 128],
    ]
    assert colours[255].tolist() == [224, 224, 192]
    assert len(palette(4)) == 12


# --------------------------------------------------------------------------- as a person sees it


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(grey).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    rgb = load_rgb(path)
    assert rgb.shape == (1, 3, 3) and rgb[0, :, 0].tolist() == [0, 128, 255]


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200  # red everywhere, but only the first row is opaque
    rgba[0, :, 3] = 255
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = load_rgb(path)
    assert rgb[0].tolist() == [[200, 0, 0]] * 2 and rgb[1].tolist() == [[255, 255, 255]] * 2


def test_exif_orientation_gives_the_displayed_image(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :5] = 255  # a white band on the left of the stored image
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=95)
    rgb = load_rgb(path)
    assert rgb.shape == (20, 10, 3)  # shown upright: portrait
    assert rgb[:5].mean() > 200 and rgb[-5:].mean() < 50  # the band is now on top


def test_the_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    from protodb.images import check_image

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(path)
    monkeypatch.setenv("PROTODB_MAX_PIXELS", "100")
    for read in (check_image, load_rgb):
        with pytest.raises(ProtodbError, match=r"20x10 = 0.0 MP, over the limit of 0.0001 MP"):
            read(path)
    monkeypatch.setenv("PROTODB_MAX_PIXELS", "many")
    with pytest.raises(ProtodbError, match="PROTODB_MAX_PIXELS='many' must be a whole number"):
        load_rgb(path)
    monkeypatch.setenv("PROTODB_MAX_PIXELS", "200")
    assert load_rgb(path).shape == (10, 20, 3)


def test_truncated_data_is_refused_not_zero_filled(tmp_path):
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    with pytest.raises(ProtodbError, match="cannot read image"):
        load_rgb(cut)
