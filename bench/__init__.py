"""protodb's benchmarks, a package run from the repository root.

    python -m bench.run_all [--quick]          # every benchmark, one line per figure
    python -m bench.bench_startup [--quick]    # one benchmark

Each ``bench_*.py`` imports its shared helpers as ``bench.common`` and prints its figures in
the one format of :mod:`bench.common`. Run from the repository root, ``-m`` puts the root first
on ``sys.path``, so a benchmark measures this tree's ``protodb``, not an installed one.
"""
