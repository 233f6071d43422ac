"""A bank of every test-world class, and its vocabulary."""

from __future__ import annotations

from protodb.bank.vocab import create_vocab, list_vocabs
from protodb.errors import ProtodbError
from protodb.profiles import get_profile
from protodb.synthesis.request import AddRequest
from protodb.synthesis.run_add import add_classes
from protodb.world.classes import CLASS_NAMES, STUFF, THINGS, WORLD


def build_bank(
    runtime,
    *,
    n: int = 8,
    seed: int = 0,
    vocab: str = WORLD,
    extractors=None,
    mask_source: str | None = None,
    progress: bool = True,
):
    """Fill ``runtime``'s bank (a protodb.runtime.Runtime on the ``world`` or ``world-learned``
    profile) with every world class (stuff recorded as kind "stuff", things as "thing") and pin
    vocabulary ``vocab`` in label order. ``extractors`` (names) and ``mask_source`` go to
    ``add`` (None: the profile's extractors, the default masks); the vocabulary uses every
    extractor the classes have.

    Returns the pinned protodb.bank.vocab.Vocabulary (an existing ``vocab`` is returned as is)."""
    if not get_profile(runtime.settings.profile).test_world:
        raise ProtodbError(
            f"the test world needs profile 'world' or 'world-learned', not "
            f"{runtime.settings.profile!r}: protodb.connect(bank, profile='world') or "
            "--profile world"
        )
    opts = {"n": n, "seed": seed, "extractors": extractors, "mask_source": mask_source}
    for kind, classes in (("thing", THINGS), ("stuff", STUFF)):
        request = AddRequest.of([c.name for c in classes], kind=kind, **opts)
        add_classes(runtime, request, progress=progress)
    if vocab in {v.name for v in runtime.read(list_vocabs)}:
        return runtime.vocab(vocab).info
    return create_vocab(runtime.open_existing(), vocab, CLASS_NAMES, seed=seed)
