"""Bank versions, time travel and tags (protodb.bank.history)."""

from protodb.bank.store import open_bank


def test_history_versions_increase(any_bank):
    bank = any_bank  # local and S3
    e1 = bank.log("first", {"a": 1})
    bank.upsert_class("grass", "grass")
    e2 = bank.log("second", {"b": [1, 2]})
    e3 = bank.log("third", {})
    hist = bank.history()
    assert [e.version for e in hist] == [1, 2, 3]
    assert [e.op for e in hist] == ["first", "second", "third"]
    assert hist[1].detail == {"b": [1, 2]}
    assert (e1.version, e2.version, e3.version) == (1, 2, 3)
    assert hist[1].versions["classes"] > hist[0].versions["classes"]
    assert hist[2].versions["log"] > hist[1].versions["log"]
    assert hist[0].created_at <= hist[1].created_at <= hist[2].created_at
    assert hist[0].versions == e1.versions


def test_read_time_travel(any_bank):
    bank = any_bank  # local and S3
    bank.upsert_class("grass", "grass")
    v1 = bank.versions()["classes"]
    bank.upsert_class("sky", "sky")
    v2 = bank.versions()["classes"]
    assert v2 > v1
    assert bank.read("classes", version=v1).column("class_key").to_pylist() == ["grass"]
    assert sorted(bank.read("classes").column("class_key").to_pylist()) == ["grass", "sky"]
    # a filtered read at a version, and the handle is back at the latest afterwards
    assert bank.read("classes", "class_key = 'sky'", version=v1).num_rows == 0
    assert bank.read("classes", "class_key = 'sky'", version=v2).num_rows == 1
    assert bank.table("classes").version == v2


def test_session_bank_history(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    hist = bank.history()
    assert [e.op for e in hist] == ["add", "add", "vocab create"]
    assert [e.version for e in hist] == [1, 2, 3]
    assert hist[0].detail["class"] == "red apple" and hist[1].detail["class"] == "grass"
    assert hist[1].versions["sets"] > hist[0].versions["sets"]
    assert bank.read("sets", version=hist[0].versions["sets"]).num_rows == 1
    assert bank.read("sets").num_rows == 2


def test_vocab_pins_are_lance_tags(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    pins = tiny_bank.vocab.versions
    for table in ("sets", "cells", "supports"):
        assert bank.tags(table) == {"vocab.v1": pins[table]}
