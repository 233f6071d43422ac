"""The offline TEST WORLD: synthetic classes with ground truth, for tests, CI and the harness.

Nothing here is a real model. The world is a closed set of synthetic classes drawn
procedurally, so the whole real pipeline (masks, prototypes, bank, vocabulary, matching, stuff
filtering) can run offline with a *meaningful* mIoU:

- **things** with a distinctive shape, colour and texture (``red disc``, ``yellow star``,
  ``purple square``, ``orange triangle``);
- **stuff** (``grass``, ``sky``, ``sand``, ``water``) that fills scenes and is also the context
  of things in their support images, so a thing's bg prototypes are near-copies of stuff fg
  prototypes (what stuff filtering, REFERENCE 1.8, exists to remove);
- **clutter** textures (concrete, wood, plaster) that belong to no class: background.

Three plugins, selected only explicitly (the ``world`` profile: ``--profile world``), never as
a fallback:

- generator ``world`` (:func:`generate_world`): support images of a class, 64 px, with an
  attribution map that imitates cross-attention: the object mask at 1/4 resolution, blurred,
  noisy, rescaled, and sometimes partial (one side of the object weakly attended);
- extractor ``world`` (:class:`WorldExtractor`): local colour and texture statistics, stride 4,
  for which nearest-prototype matching means something;
- :func:`make_dataset`: a target dataset in the PASCAL VOC layout (JPEGImages,
  SegmentationClass palette PNGs with 255 on object borders, ImageSets/Segmentation/val.txt),
  made from a seed; read it with ``protodb eval --dataset world``.

Every output made with these is labelled "test world".

Modules: classes, draw, generator, extractor, dataset, bank. The generator and extractor are
registered lazily by name, so nothing imports this package unless the world is asked for.
"""
