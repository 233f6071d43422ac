"""Past one machine: protodb's units of work on Ray (an optional extra: ``pip install
protodb[ray]``).

protodb supplies the work units and keeps the bank's guarantees; Ray schedules them:

- :mod:`protodb.scale.cluster`: joining (or starting) a Ray cluster with the settings that do
  not hang (REFERENCE 5), and the resources it has;
- :mod:`protodb.scale.add`: ``add --ray``: one (class, seed) a unit, computed on actors that keep
  the models loaded, committed by the driver alone with the keyed, journalled writes of ``add``;
- :mod:`protodb.scale.segment`: ``segment --ray``: Ray Data over an image list, an actor pool
  holding the assembled vocabulary, the same per-image outputs as ``segment``.

Nothing here imports ray at module import time; a missing extra is one line naming the fix.
"""
