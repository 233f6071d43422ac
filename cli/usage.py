"""Usage errors (a bad option value, a missing argument, an unknown command) as one line.

typer prints click's three-line block (usage, a hint, the error); protodb prints every user
mistake as one line naming the value and where to look, exit code 2 as before. The root command
group catches the usage error of any subcommand, since subcommands are parsed inside its invoke.
"""

from __future__ import annotations

from typing import Any

import typer
from typer._click import exceptions as click_errors
from typer.core import TyperGroup


class OneLineUsageError(click_errors.ClickException):
    """A usage error shown as one line on stderr (exit code 2)."""

    exit_code = 2

    def __init__(self, error: click_errors.UsageError, argv: list[str]) -> None:
        path = error.ctx.command_path if error.ctx is not None else "protodb"
        message = " ".join(error.format_message().split())
        given = _given_value(error, argv)
        if given is not None:
            message = f"{message} (given {given!r})"
        super().__init__(f"error: {path}: {message} (see '{path} --help')")

    def show(self, file: Any = None) -> None:
        from protodb.cli.common import err

        err(self.message)


def _given_value(error: click_errors.UsageError, argv: list[str]) -> str | None:
    """The value the user gave to the option a BadParameter error is about, from the raw
    arguments (typer's messages do not name it); None when it cannot be told."""
    param = getattr(error, "param", None)
    if not isinstance(error, click_errors.BadParameter) or param is None:
        return None
    for i, token in enumerate(argv):
        for opt in getattr(param, "opts", ()):
            if not opt.startswith("-"):
                continue
            if token == opt and i + 1 < len(argv):
                return argv[i + 1]
            if token.startswith(opt + "="):
                return token[len(opt) + 1 :]
    return None


def _one_line(error: click_errors.UsageError, argv: list[str]) -> click_errors.ClickException:
    if isinstance(error, click_errors.NoArgsIsHelpError):
        return error  # a bare command prints its help, as asked for
    return OneLineUsageError(error, argv)


#: options whose value may be left out, and the value they then take (``--ray`` alone: a
#: cluster of this machine); typer has no optional-value options, so the argv is completed here
OPTIONAL_VALUE = {"--ray": "local"}


def _is_value(option: str, token: str) -> bool:
    """Whether ``token`` after ``option`` is its value: for ``--ray``, a Ray address ("local",
    "auto", HOST:PORT, ray://HOST:PORT); anything else is the next argument (``--ray photos/``
    means a local cluster and the input photos/). ``--ray=VALUE`` is always taken as given."""
    from protodb.scale.cluster import looks_like_address

    return looks_like_address(token)


def optional_values(args: list[str]) -> list[str]:
    """``args`` with the implied value after each option of :data:`OPTIONAL_VALUE` given
    without one (last on the line, or followed by another option, ``--`` or a token that is
    not its value)."""
    out: list[str] = []
    for i, a in enumerate(args):
        out.append(a)
        if a == "--":
            return out + args[i + 1 :]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if a in OPTIONAL_VALUE and (nxt is None or nxt.startswith("-") or not _is_value(a, nxt)):
            out.append(OPTIONAL_VALUE[a])
    return out


class OneLineUsageGroup(TyperGroup):
    """The root group: usage errors of the root and of every subcommand become one line."""

    def make_context(
        self, info_name: str | None, args: list[str], *rest: Any, **kwargs: Any
    ) -> typer.Context:
        args = optional_values(list(args))
        self._argv = list(args)
        try:
            return super().make_context(info_name, args, *rest, **kwargs)
        except click_errors.UsageError as e:
            raise _one_line(e, self._argv) from None

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click_errors.UsageError as e:
            raise _one_line(e, getattr(self, "_argv", [])) from None
