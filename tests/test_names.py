import pytest

from protodb.errors import ProtodbError
from protodb.names import MAX_CLASS_LEN, canonical, class_key


def test_canonical_collapses_whitespace_and_strips():
    assert canonical("  red \t\n  apple ") == "red apple"


def test_canonical_keeps_case_for_display():
    assert canonical("Red Apple") == "Red Apple"


def test_canonical_applies_nfc():
    decomposed = "cafe\u0301"  # e + combining acute
    assert canonical(decomposed) == "caf\u00e9"
    assert len(canonical(decomposed)) == 4


def test_class_key_casefolds():
    assert class_key("Red  APPLE") == "red apple"
    assert class_key("Stra\u00dfe") == "strasse"
    assert class_key("cafe\u0301") == class_key("CAF\u00c9")


@pytest.mark.parametrize("bad", ["", "   ", "\t\n"])
def test_empty_name_raises(bad):
    with pytest.raises(ProtodbError, match="empty class name"):
        canonical(bad)


def test_too_long_name_raises_with_length():
    name = "x" * (MAX_CLASS_LEN + 1)
    with pytest.raises(ProtodbError, match=f"{MAX_CLASS_LEN + 1} characters"):
        canonical(name)
    assert canonical("x" * MAX_CLASS_LEN) == "x" * MAX_CLASS_LEN


def test_control_characters_raise():
    with pytest.raises(ProtodbError, match="control characters"):
        canonical("red\x00apple")


def test_length_is_checked_after_collapsing():
    raw = ("a" + " " * 9) * 30  # 300 characters, 59 once the runs of spaces collapse
    assert len(raw) > MAX_CLASS_LEN
    assert canonical(raw) == " ".join(["a"] * 30)
