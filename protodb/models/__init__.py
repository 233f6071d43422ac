"""Model loading: real models by hub id or local path, and the offline ``tiny`` twins.

Real models come through their own libraries (diffusers, transformers, open_clip) and honour
their cache and offline settings (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``). A model that
is neither cached nor reachable raises :class:`ModelNotFoundError` naming the model and how to
get it; there is never a silent fallback to another model.

The ``tiny`` models are the same classes (UNet2DConditionModel, AutoencoderKL, CLIPTextModel,
Dinov2Model, open_clip CLIP) built from tiny configs with deterministic random weights: the
weights depend only on :data:`TINY_SEED` and the config, so every process builds identical
models. They make the machinery testable offline; their outputs mean nothing.

Loaded models are cached per process, keyed by (what, model, revision, device, dtype).

Modules, one per library: loading (shared: the tiny seed, missing-model errors), diffusion
(diffusers: Stable Diffusion and its tokenizer), vision (transformers: DINOv2, DINO, MAE, SAM),
openclip (open_clip).
"""
