"""The world report (protodb.world.report): every row through the real learned path and the
oracle, on a small run (2 support images per class, 3 scenes)."""

from __future__ import annotations

from protodb.world.report import world_report


def test_the_report_measures_the_learned_path_beside_the_oracle(tmp_path):
    said: list[str] = []
    rep = world_report(tmp_path, n=2, images=3, seed=0, say=said.append)
    settings = [(r.path, r.setting) for r in rep.rows]
    assert settings[0] == ("learned", "full (sd extractor)")
    for want in ("without bg", "without instances", "without parts", "without stuff"):
        assert ("learned", want) in settings and ("oracle", want) in settings
    assert ("learned", "ensemble sd + world") in settings
    assert ("learned", "maskcut masks (sd)") in settings
    assert all(r.miou is None or 0.0 <= r.miou <= 100.0 for r in rep.rows)
    assert rep.miou("oracle", "full (drawn attention)") > 0
    assert len(said) == len(rep.seconds) == 7
    assert "learned" in rep.lines()[1] and "mIoU" in rep.lines()[0]
    # the learned bank holds sets made by the sd generator on the shipped model
    import protodb

    db = protodb.connect(tmp_path / "learned", profile="world-learned", device="cpu")
    (info,) = [c for c in db.classes() if c.name == "red disc"]
    assert any(s["extractor_id"].startswith("sd-") for s in info.sets)


def test_report_refuses_a_file_as_its_workdir_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from protodb.cli.app import app

    afile = tmp_path / "afile"
    afile.write_text("x")
    res = CliRunner().invoke(app, ["world", "report", "--workdir", str(afile)])
    assert res.exit_code != 0 and "is a file; give a directory" in res.output
    assert "Traceback" not in res.output and afile.read_text() == "x"
