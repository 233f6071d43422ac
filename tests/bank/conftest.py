"""Fixtures of the bank tests."""

import pytest

from protodb.bank.store import Bank, open_bank


@pytest.fixture
def bank(tmp_path) -> Bank:
    """A new, empty bank in a temporary directory."""
    return open_bank(str(tmp_path / "bank"))


@pytest.fixture
def any_bank(bank_uri) -> Bank:
    """A new, empty bank in a temporary directory or on the emulated S3 (``store``)."""
    return open_bank(bank_uri)
