"""Bank content printed to a terminal is escaped (protodb.cli.common.printable): a shared bank
is another person's input, written with any tool, not only through ``add``."""

from __future__ import annotations

import subprocess
import sys

from protodb.bank.store import open_bank
from protodb.cli.common import printable

HOSTILE = "red\u202eelppa \x1b[2J\x07"


def test_printable_escapes_what_a_terminal_acts_on_and_keeps_the_rest():
    assert printable("crème brûlée\tgrass\n") == "crème brûlée\tgrass\n"
    assert printable(HOSTILE) == "red\\u202eelppa \\x1b[2J\\x07"
    assert printable("a\ud800b") == "a\\ud800b"


def test_listings_of_a_hostile_bank_are_escaped(bank_copy):
    """A class name written straight into the tables (as a hostile tool would): ls, show and
    history print it escaped, through the quick path and through typer alike."""
    bank = open_bank(str(bank_copy))
    key = bank.read("classes").column("class_key").to_pylist()[0]
    for table in ("classes", "sets"):
        bank.table(table).update(where=f"class_key = '{key}'", values={"name": HOSTILE})
    cli = "from protodb.cli.app import main; main()"
    for args in (["ls"], ["--debug", "ls"], ["vocab", "show", "v1"]):
        run = subprocess.run(
            [sys.executable, "-c", cli, "--bank", str(bank_copy), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = run.stdout + run.stderr
        assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out, args
