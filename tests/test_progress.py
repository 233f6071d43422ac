"""Progress: one bar per level, on stderr, silent when off (protodb.progress)."""

import io

import pytest
from conftest import make_image

from protodb.extractors.factory import default_extractor_config
from protodb.progress import OFF, NoBar, Progress
from protodb.synthesis.add import add_class
from protodb.synthesis.generate import default_generator_config


def test_off_draws_nothing_and_hands_out_no_op_bars():
    with OFF.bar("x", 3) as bar:
        assert isinstance(bar, NoBar)
        bar.update(1)
        bar.set_description_str("y")
    assert Progress.of(False).enabled is False and Progress.of(True).enabled is True
    assert Progress.of(OFF) is OFF


def test_bars_nest_one_level_each():
    out = io.StringIO()
    prog = Progress(file=out)
    with prog.bar("outer", 2, "set") as a:
        with prog.bar("inner", 4, "img", fractional=True) as b:
            assert (a.pos, b.pos) in ((0, 1), (0, -1))  # tqdm keeps positions of open bars
            b.update(0.5)
            b.refresh()  # tqdm redraws at most every 0.2 s by itself
        with prog.bar("hidden", 1, show=False) as c:
            assert isinstance(c, NoBar)
    text = out.getvalue()
    assert "outer" in text and "inner" in text and "hidden" not in text
    assert "0.5/4 img" in text


def test_add_shows_every_stage_and_the_denoising_steps(tmp_path):
    from protodb.bank.store import open_bank

    out = io.StringIO()
    gen = default_generator_config("tiny", steps=3)
    ext = default_extractor_config("tiny")
    bank = open_bank(str(tmp_path / "bank"))
    add_class(bank, "sky", generator=gen, extractors=[ext], n=2, progress=Progress(file=out))
    text = out.getvalue()
    for stage in ("sky: generate", "generate sky", "sky: masks (otsu)", "features dinov2",
                  "sky: prototypes dinov2", "sky: bank write dinov2"):  # fmt: skip
        assert stage in text, stage


@pytest.mark.parametrize("flag", ["--quiet", "--json", None])
def test_cli_add_quiet_and_json_draw_no_bar(tmp_path, flag):
    from typer.testing import CliRunner

    from protodb.cli.app import app

    args = ["--bank", str(tmp_path / "b"), "--profile", "tiny", "add", "sea", "--n", "2"]
    r = CliRunner().invoke(app, args + ([flag] if flag else []))
    assert r.exit_code == 0, r.output
    drawn = "sea: generate" in r.stderr and "%|" in r.stderr
    assert drawn == (flag is None)  # None: the control, bars are drawn


@pytest.mark.parametrize("windows", [True, False])
def test_segment_shows_extractors_and_windows(tiny_bank, windows):
    from protodb.query.config import QueryConfig

    out = io.StringIO()
    handle = tiny_bank.db.vocab("v1", QueryConfig(windows=windows))
    a = handle.segment(make_image(50, 70, 0), progress=Progress(file=out))
    b = handle.segment(make_image(50, 70, 0))
    assert "windows, dinov2" in out.getvalue()
    assert (a.labels == b.labels).all()


def test_open_bars_keep_ticking_through_a_silent_step():
    import time

    out = io.StringIO()
    prog = Progress(file=out, tick_s=0.05)
    with prog.bar("kmeans", 1, "step"):
        before = len(out.getvalue())
        time.sleep(0.4)  # a long step that reports nothing
        assert len(out.getvalue()) > before
    assert prog._ticker is None  # the ticker stops with the last bar
