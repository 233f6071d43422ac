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
