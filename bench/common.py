"""The one output format of every benchmark under bench/.

Each figure is one line on stdout, tab-separated: ``name<TAB>value<TAB>unit<TAB>baseline: TEXT``,
where TEXT names the baseline measured in the same run (and the ratio against it), or ``-``.
``bench/run_all.py`` runs every ``bench_*.py`` and collects these lines.
"""

from __future__ import annotations


def figure(name: str, value: float, unit: str, baseline: str = "-", digits: int = 3) -> str:
    """Print (and return) one figure line, e.g. ``figure("segment", 10.5, "ms/image")``."""
    line = f"{name}\t{value:.{digits}f}\t{unit}\tbaseline: {baseline}"
    print(line, flush=True)
    return line
