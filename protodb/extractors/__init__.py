"""Dense feature extractors, one per module, by registry name.

base (the contract, :class:`~protodb.extractors.base.ExtractorConfig`, the registry), vit (key
hooks shared by the ViTs), dinov2, dino, mae, clip, sd, and factory (defaults per profile,
:func:`~protodb.extractors.factory.get_extractor`). A module is imported only when its extractor
is used.
"""
