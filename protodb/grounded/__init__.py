"""After grounded diffusion (REFERENCE 3): synthetic labelled datasets made by the diffusion
model, a grounding head trained on them, and a student segmenter distilled from a vocabulary.
Named apart from :mod:`protodb.synthesis`, which builds a class's support set and prototypes.

Modules, one stage each: compose (prompts and their entities: a seeded sampler over a
vocabulary, or prompts given), tokens (each entity's token span), sampling (images from prompts
with every entity's cross-attention captured), entity_masks (one mask per entity from attention,
from the vocabulary's segmentation, or from the grounding head; agreement between sources),
dataset (the VOC-layout + COCO-RLE writer, resumable), run (``protodb synth``), reference (the
colour-nearest reference masks of the learned test world, for figures), grounding (the trainable
grounding head), train (``protodb grounding train``), student (``protodb distill``).
"""
