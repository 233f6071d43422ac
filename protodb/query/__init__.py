"""The query engine: segment images against a pinned vocabulary (the read path of OVDiff).

config (QueryConfig) -> assemble (prototypes + background class + stuff filter) -> windows ->
prefilter (CLIP) -> match (cosine, max per class) -> pamr -> segment (the Segmenter) ->
outputs (PNG, overlay, RLE, JSON) and explain (which support regions decided a pixel).
"""
