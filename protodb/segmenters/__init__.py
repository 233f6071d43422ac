"""Unsupervised instance segmenters: class-agnostic mask proposals for one image, by name.

A segmenter maps an RGB image (uint8 [H, W, 3]) to instance proposals (bool [M, H, W], M >= 0,
possibly overlapping); :func:`protodb.synthesis.masks.select_masks` turns them into fg / bg by
eq. (1). The paper used CutLER (detectron2, not on PyPI); these are training-free substitutes
(REFERENCE 1.3).

Modules: base (the registry), maskcut (normalized cuts on DINO keys), sam (SAM automatic masks).
"""
