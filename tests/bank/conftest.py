"""Fixtures of the bank tests."""

import pytest

from protodb.bank.store import Bank, open_bank


@pytest.fixture
def bank(tmp_path) -> Bank:
    """A new, empty bank in a temporary directory."""
    return open_bank(str(tmp_path / "bank"))
