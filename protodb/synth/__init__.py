"""Synthetic labelled datasets from the diffusion model (grounded diffusion, REFERENCE 3).

Modules, one stage each: compose (prompts and their entities: a seeded sampler over a
vocabulary, or prompts given), tokens (each entity's token span), generate (images from prompts
with every entity's cross-attention captured), masks (one mask per entity from attention, from
the vocabulary's segmentation, or from the grounding head; agreement between sources),
dataset (the VOC-layout + COCO-RLE writer, resumable), run (the whole command), reference (the
colour-nearest reference masks of the learned test world, for figures), grounding (the trainable
grounding head).
"""
