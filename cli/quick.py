"""The listings without typer's parsing: ``protodb [--bank B] [--profile P] [--device D]
[--at N] [--debug] ls | history | show NAME | vocab ls | vocab show NAME [--json]``.

typer 0.29 coerces each option value through a pydantic TypeAdapter, so parsing a command line
that carries an option imports pydantic and builds adapters: measured here, a whole ``ls``
takes 0.72 CPU seconds through typer and 0.50 through :func:`run`.
:func:`parse` recognises only the plain forms above; anything else (another command, ``--help``,
``--bank=B``, an option given twice, a value starting with ``-``, an ``--at`` that is not a
positive decimal integer, a shell-completion request) gives None, and typer parses the line as
before. :func:`run` calls the same command function with the options typer would have passed
it, so what it prints and its exit status are the same.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_VALUED = ("--bank", "--profile", "--device", "--at")
_AT = re.compile(r"[1-9][0-9]{0,17}")


@dataclass
class Context:
    """What the listing commands read of typer's context: the global options in ``obj``."""

    obj: dict = field(default_factory=dict)


@dataclass
class Call:
    """A recognised command line: the command function and its arguments."""

    command: Callable
    ctx: Context
    args: tuple = ()
    as_json: bool = False


def parse(argv: Sequence[str]) -> Call | None:
    """The listing ``argv`` (without the program name) asks for, or None for typer to parse."""
    if any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None  # shell completion: typer's
    obj: dict = {"bank": None, "profile": None, "device": None, "at": None, "debug": False}
    seen: set[str] = set()
    argv = list(argv)
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        opt = argv[i]
        if opt in seen or (opt != "--debug" and opt not in _VALUED):
            return None
        seen.add(opt)
        if opt == "--debug":
            obj["debug"] = True
            i += 1
            continue
        if i + 1 == len(argv) or argv[i + 1].startswith("-"):
            return None
        value = argv[i + 1]
        if opt == "--at":
            if not _AT.fullmatch(value):
                return None
            value = int(value)
        obj[opt[2:]] = value
        i += 2
    rest = argv[i:]
    as_json = rest.count("--json") == 1
    if as_json:
        rest.remove("--json")
    if any(a.startswith("-") for a in rest):
        return None
    command = _command(rest)
    if command is None:
        return None
    function, args = command
    return Call(function, Context(obj), args, as_json)


def _command(words: list[str]) -> tuple[Callable, tuple] | None:
    from protodb.cli import browse, vocab

    match words:
        case ["ls"]:
            return browse.ls, ()
        case ["history"]:
            return browse.history, ()
        case ["show", name]:
            return browse.show, (name,)
        case ["vocab", "ls"]:
            return vocab.vocab_ls, ()
        case ["vocab", "show", name]:
            return vocab.vocab_show, (name,)
    return None


def run(call: Call) -> None:
    """Run a recognised listing and exit as typer would (0, or the command's exit code)."""
    import typer

    try:
        call.command(call.ctx, *call.args, as_json=call.as_json)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:  # a closed pipe (protodb ls | head): quiet, exit 1, as click does
        if e.errno != errno.EPIPE:
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush
        sys.exit(1)
    sys.exit(0)
