"""The Runtime that connect() builds and the features take."""

import protodb
from protodb.runtime import Runtime


def test_connect_builds_one_runtime(tiny_bank):
    db = protodb.connect(tiny_bank.path, profile="tiny", device="cpu")
    rt = db.runtime
    assert isinstance(rt, Runtime) and rt.settings is db.settings
    assert (rt.device, rt.at) == ("cpu", None)
    assert [c.name for c in rt.classes()] == [c.name for c in db.classes()]
    assert rt.opened is None and rt.reader  # listings read without the Bank


def test_a_runtime_alone_serves_the_features(tiny_bank):
    rt = Runtime.connect(tiny_bank.path, profile="tiny", device="cpu")
    handle = rt.vocab("v1")
    assert handle.runtime is rt and handle.config == rt.query_config()
    assert handle.segmenter is rt.vocab("v1").segmenter  # cached per session
    assert rt.query_config(eta=3).eta == 3
