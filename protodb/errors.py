"""Errors protodb raises on purpose.

Every error a user can cause derives from :class:`ProtodbError`; its message names the offending
value and the fix. The CLI prints such messages to stderr and exits non-zero without a traceback.
"""

from __future__ import annotations


class ProtodbError(Exception):
    """A mistake the user can fix (bad input, unknown name, missing model)."""

    exit_code = 2


class NotFoundError(ProtodbError):
    """A named thing (class, vocabulary, image, version) does not exist."""


class ModelNotFoundError(ProtodbError):
    """A model's weights are neither in the local cache nor at the given path."""

    exit_code = 3


class BankError(ProtodbError):
    """The bank cannot be opened or is in a state the operation does not allow."""


class NeedsMigrationError(BankError):
    """A bank of an older schema was opened without permission to migrate it in place."""


class ParameterError(ProtodbError):
    """A bad value of one named parameter of a library call.

    ``parameter``: the Python name (``batch_size``); the message reads ``batch_size=0 must be
    >= 1``, and :meth:`spelled` gives it under another name (the CLI's ``--batch-size 0 must be
    >= 1``). ``flag``: the spelling of the message itself where a caller pins the flag form."""

    def __init__(
        self, parameter: str, value: object, rule: str, *, flag: str | None = None
    ) -> None:
        self.parameter, self.value, self.rule = parameter, value, rule
        shown = repr(value) if isinstance(value, str) else str(value)
        self._shown = shown
        text = f"{flag} {shown} {rule}" if flag else f"{parameter}={shown} {rule}"
        super().__init__(text)

    def spelled(self, name: str) -> str:
        """The message with the parameter called ``name`` (e.g. a CLI flag): ``NAME VALUE RULE``."""
        return f"{name} {self._shown} {self.rule}"
