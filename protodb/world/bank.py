"""A bank of every test-world class, and its vocabulary."""

from __future__ import annotations

from protodb.errors import ProtodbError
from protodb.world.classes import CLASS_NAMES, STUFF, THINGS, WORLD


def build_bank(
    db,
    *,
    n: int = 8,
    seed: int = 0,
    vocab: str = WORLD,
    extractors=None,
    mask_source: str = "otsu",
    progress: bool = True,
):
    """Fill ``db`` (a ProtoDB on the ``world`` or ``world-learned`` profile) with every world
    class (stuff recorded as kind "stuff", things as "thing") and pin vocabulary ``vocab`` in
    label order. ``extractors`` (names) and ``mask_source`` go to ``add`` (default: the
    profile's extractors, otsu masks); the vocabulary uses every extractor the classes have.

    Returns the pinned protodb.bank.vocab.Vocabulary (an existing ``vocab`` is returned as is)."""
    if db.settings.profile not in (WORLD, "world-learned"):
        raise ProtodbError(
            f"the test world needs profile 'world' or 'world-learned', not "
            f"{db.settings.profile!r}: protodb.connect(bank, profile='world') or --profile world"
        )
    opts = {"n": n, "seed": seed, "extractors": extractors, "mask_source": mask_source}
    db.add([c.name for c in THINGS], kind="thing", progress=progress, **opts)
    db.add([c.name for c in STUFF], kind="stuff", progress=progress, **opts)
    if vocab in {v.name for v in db.vocabs()}:
        return db.vocab(vocab).info
    return db.create_vocab(vocab, CLASS_NAMES, seed=seed)
