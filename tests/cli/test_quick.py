"""The listings without typer's parsing (protodb.cli.quick): which command lines it takes, and
that what they print and their exit status are what typer's path gives."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from protodb.cli import app as app_module
from protodb.cli import browse, quick, vocab
from protodb.cli.app import app


@pytest.mark.parametrize(
    ("argv", "command", "args", "obj", "as_json"),
    [
        (["ls"], browse.ls, (), {}, False),
        (["--bank", "B", "ls", "--json"], browse.ls, (), {"bank": "B"}, True),
        (["--at", "12", "--profile", "tiny", "history"], browse.history, (), {"at": 12}, False),
        (["--debug", "show", "red apple"], browse.show, ("red apple",), {"debug": True}, False),
        (["show", "--json", "grass"], browse.show, ("grass",), {}, True),
        (["--device", "cpu", "vocab", "ls"], vocab.vocab_ls, (), {"device": "cpu"}, False),
        (["--bank", "", "vocab", "show", "v1", "--json"], vocab.vocab_show, ("v1",), {}, True),
    ],
)
def test_plain_listings_are_taken(argv, command, args, obj, as_json):
    call = quick.parse(argv)
    assert call is not None and call.command is command
    assert call.args == args and call.as_json is as_json
    for key, value in obj.items():
        assert call.ctx.obj[key] == value
    if "--bank" in argv:
        assert call.ctx.obj["bank"] == argv[argv.index("--bank") + 1]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["ls", "--help"],
        ["add", "grass"],
        ["vocab"],
        ["vocab", "create", "v1", "grass"],
        ["show"],
        ["show", "a", "b"],
        ["show", "-x"],
        ["show", "--", "-x"],
        ["--bank=B", "ls"],
        ["--bank", "A", "--bank", "B", "ls"],
        ["--bank", "--json", "ls"],
        ["--bank"],
        ["--at", "0", "ls"],
        ["--at", "+3", "ls"],
        ["--at", "1_0", "ls"],
        ["--at", "x", "ls"],
        ["--json", "ls"],
        ["ls", "--json", "--json"],
        ["ls", "extra"],
        ["--install-completion"],
        ["history", "-q"],
    ],
)
def test_anything_else_is_left_to_typer(argv):
    assert quick.parse(argv) is None


def test_shell_completion_is_left_to_typer(monkeypatch):
    monkeypatch.setenv("_PROTODB_COMPLETE", "bash_complete")
    assert quick.parse(["ls"]) is None


def _through_typer(argv):
    result = CliRunner().invoke(app, argv)
    return result.exit_code, result.stdout, result.stderr


def _through_quick(argv, capsys):
    call = quick.parse(argv)
    assert call is not None
    with pytest.raises(SystemExit) as done:
        quick.run(call)
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


LISTINGS = [
    ["ls"],
    ["ls", "--json"],
    ["history"],
    ["history", "--json"],
    ["show", "grass"],
    ["show", "--json", " Red  Apple"],
    ["show", "banana"],
    ["vocab", "ls"],
    ["vocab", "ls", "--json"],
    ["vocab", "show", "v1"],
    ["vocab", "show", "v1", "--json"],
    ["vocab", "show", "nope"],
    ["--at", "2", "ls"],
    ["--at", "4", "show", "sky", "--json"],
    ["--at", "3", "vocab", "ls"],
    ["--at", "9", "history"],
    ["--profile", "bogus", "ls"],
    ["--device", "tpu", "vocab", "ls"],
]


@pytest.mark.parametrize("argv", LISTINGS, ids=" ".join)
def test_the_same_output_and_exit_status_as_typers(grown_bank, capsys, argv):
    argv = ["--bank", str(grown_bank.path), *argv]
    typer_result = _through_typer(argv)
    assert _through_quick(argv, capsys) == typer_result
    if typer_result[0] == 0:
        assert typer_result[1]


def test_a_missing_bank_says_so_the_same_way(tmp_path, capsys):
    argv = ["--bank", str(tmp_path / "nowhere"), "ls"]
    code, out, err = _through_quick(argv, capsys)
    assert (code, out, err) == _through_typer(argv)
    assert code == 2 and "no protodb bank at" in err


def test_main_takes_the_quick_path_for_a_listing_only(grown_bank, monkeypatch, capsys):
    parsed = []

    def typer_app():
        parsed.append(sys.argv[1:])
        raise SystemExit(0)

    monkeypatch.setattr(app_module, "app", typer_app)
    monkeypatch.setattr(sys, "argv", ["protodb", "--bank", str(grown_bank.path), "ls"])
    with pytest.raises(SystemExit) as done:
        app_module.main()
    assert done.value.code == 0 and "sky\tstuff" in capsys.readouterr().out and not parsed
    monkeypatch.setattr(sys, "argv", ["protodb", "--bank", str(grown_bank.path), "ls", "-x"])
    with pytest.raises(SystemExit):
        app_module.main()
    assert parsed == [["--bank", str(grown_bank.path), "ls", "-x"]]


def test_a_listing_imports_neither_lancedb_nor_pydantic(tiny_bank):
    """The whole process: the listing prints, and the two slow imports never happen."""
    code = (
        "import sys\n"
        f"sys.argv = ['protodb', '--bank', {str(tiny_bank.path)!r}, 'ls']\n"
        "from protodb.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lancedb', 'pydantic', 'torch'}))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("grass\t") and lines[-1] == "[]"
