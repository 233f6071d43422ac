"""Zero-shot referring segmentation after Ref-Diff (REFERENCE 2): one free-form expression in,
the one region it refers to out, from the same diffusion machinery as the prototype bank.

One algorithm per module: :mod:`geometry` (pad to square, crop back), :mod:`subject` (the
expression's head noun), :mod:`attention` (generative attention on a real image),
:mod:`proposals` (threshold ladder, unsupervised segmenters), :mod:`scores` (generative,
discriminative, position prior, fusion), :mod:`refer` (the pipeline and its typed result),
:mod:`outputs` (files, JSONL batches) and :mod:`evaluate` (RefCOCO-style evaluation).
"""
