"""What every command shares: the JSON flag, user errors as one line on stderr, the library handle
built from the global options, and the notice for offline profiles.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on or hide (control characters but
    tab and newline, format characters such as bidi overrides, surrogates) written as an
    escape: bank content is another person's input, and a name must not move the cursor,
    recolour the terminal or reverse the text after it."""
    import unicodedata

    def one(c: str) -> str:
        cat = unicodedata.category(c)
        if c in "\t\n" or cat not in ("Cc", "Cf", "Cs"):
            return c
        return c.encode("unicode_escape", "backslashreplace").decode("ascii")

    return "".join(one(c) for c in text)


def echo(text: str) -> None:
    """Print a line of bank content to stdout, escaped (:func:`printable`)."""
    typer.echo(printable(text))


def err(message: str) -> None:
    typer.echo(printable(message), err=True)


@contextlib.contextmanager
def user_errors():
    """Turn protodb's user errors into a message on stderr and a non-zero exit."""
    from protodb.errors import ProtodbError

    try:
        yield
    except ProtodbError as e:
        err(f"error: {e}")
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        err("interrupted; what was committed to the bank stays, re-run to continue")
        raise typer.Exit(130) from None


@contextlib.contextmanager
def flag_errors(flags: dict[str, str]):
    """Spell a library ParameterError under the command's flag (``flags``: parameter -> flag):
    ``batch_size=0 must be >= 1`` reads ``--batch-size 0 must be >= 1`` on the command line."""
    from protodb.errors import ParameterError, ProtodbError

    try:
        yield
    except ParameterError as e:
        if e.parameter not in flags:
            raise
        raise ProtodbError(e.spelled(flags[e.parameter])) from None


def open_db(ctx: typer.Context):
    import protodb

    o = ctx.obj or {}
    db = protodb.connect(
        o.get("bank"), profile=o.get("profile"), device=o.get("device"), at=o.get("at")
    )
    return db


def profile_notice(db) -> None:
    """The profile's notice (protodb.profiles.Profile.notice) on stderr, when it has one."""
    from protodb.profiles import get_profile

    notice = get_profile(db.settings.profile).notice
    if notice:
        err(notice)


def crash_report(exc: BaseException, argv: list[str]) -> Path:
    """Write the traceback of an unexpected exception, the command line and the versions to a
    new file in the per-user log directory ($PROTODB_LOG_DIR overrides it); returns its path."""
    import datetime as dt
    import platform
    import traceback

    from platformdirs import user_log_dir

    from protodb.version import __version__

    folder = Path(os.environ.get("PROTODB_LOG_DIR") or user_log_dir("protodb"))
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"crash-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(exc))
    head = f"protodb {__version__}, Python {platform.python_version()}\ncommand: {argv!r}\n\n"
    path.write_text(head + text)
    return path


def crash_message(exc: BaseException, log: Path) -> str:
    """One line: it is a bug, what it was, where the traceback is and how to see it."""
    first = (str(exc).strip().splitlines() or [""])[0]
    first = "".join(c if c.isprintable() else "?" for c in first)[:200]
    return (
        f"internal error (a bug in protodb): {type(exc).__name__}: {first}; the traceback is in "
        f"{log}; rerun with --debug to see it here, and please report it"
    )


RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help=(
            "Run the work units on Ray (pip install 'protodb[ray]'): alone, a cluster of "
            "this machine; with HOST:PORT, ray://HOST:PORT or 'auto', a running cluster's "
            "head (a value that is not an address is the next argument)."
        ),
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="With --ray: actors to run (default one per GPU, else 2 CPU actors).",
    ),
]
