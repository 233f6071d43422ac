"""The hub ids of the real profile's models (a leaf module: loaders, extractors and the
architecture checks all read them from here)."""

SD_DEFAULT = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DINOV2_DEFAULT = "facebook/dinov2-base"
DINO_DEFAULT = "facebook/dino-vitb8"
MAE_DEFAULT = "facebook/vit-mae-base"
SAM_DEFAULT = "facebook/sam-vit-base"  # the segmenters' (the bank's ``sam`` mask source)
# Ref-Diff's proposals: SAM ViT-H's automatic mask generator (REFERENCE 2)
SAM_REFER_DEFAULT = "facebook/sam-vit-huge"
# OpenAI's CLIP weights were trained with QuickGELU: open_clip's plain "ViT-B-16" builds nn.GELU
CLIP_DEFAULT = "ViT-B-16-quickgelu"
CLIP_DEFAULT_PRETRAINED = "openai"
