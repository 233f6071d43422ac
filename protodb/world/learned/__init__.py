"""The learned test world: a tiny Stable Diffusion trained here on the procedural world.

Modules: scenes (training scenes with a caption and a mask per named entity), train (the
training script, not run by CI).
"""
