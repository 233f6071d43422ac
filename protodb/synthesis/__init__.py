"""Synthesis: from a class name to stored prototypes (the write path of OVDiff).

generate (support images) -> attention (class-token cross-attention) -> masks (fg / bg) ->
kinds (stuff / thing) -> prototypes (class, instance, part, streamed per batch of features;
the parts' K-means in kmeans) -> add (the keyed, resumable driver that writes them to the
bank). Feature extraction lives in :mod:`protodb.extractors`.
"""
