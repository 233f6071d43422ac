"""Run every benchmark of the project and print one line per figure.

    python -m bench.run_all [--quick] [--only SUBSTRING] [--timeout SECONDS]

Discovers ``bench_*.py`` next to this file (or in ``--dir``), runs each in its own process as a
module of its folder's package from the folder's parent (``python -m bench.bench_x`` from the
repository root, so that ``bench.common`` and this tree's ``protodb`` are the ones imported) with
its own defaults, passing ``--quick`` only to benchmarks that accept it, and prints each figure
line (``name<TAB>value<TAB>unit<TAB>baseline: ...``, see bench/common.py) to stdout as it comes.
Everything else a benchmark prints goes to stderr, with a header per benchmark naming the
device (CUDA when torch sees a GPU, else the CPU). Exits 1 when any benchmark fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(directory: Path = HERE, only: str | None = None) -> list[Path]:
    """The benchmark scripts bench_*.py in ``directory``, sorted by name."""
    found = sorted(directory.glob("bench_*.py"))
    return [p for p in found if only is None or only in p.stem]


def accepts_quick(path: Path) -> bool:
    """True when the script declares a ``--quick`` option."""
    text = path.read_text("utf-8")
    return '"--quick"' in text or "'--quick'" in text


def is_figure(line: str) -> bool:
    """A figure line: four tab-separated fields, a numeric value, the last 'baseline: ...'."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 4 or not parts[3].startswith("baseline:"):
        return False
    try:
        float(parts[1])
    except ValueError:
        return False
    return True


@dataclass
class BenchRun:
    """One benchmark's run: exit code, figure lines, seconds."""

    path: Path
    returncode: int
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_bench(
    path: Path, *, quick: bool = False, timeout: float = 1800, echo=print, log=None
) -> BenchRun:
    """Run one benchmark script as ``python -m <folder>.<script>`` from the folder's parent;
    figure lines go to ``echo`` as they arrive, the rest to ``log`` (default: stderr)."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    module = f"{path.parent.name}.{path.stem}"  # bench/bench_x.py -> bench.bench_x
    cmd = [sys.executable, "-m", module] + (["--quick"] if quick and accepts_quick(path) else [])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    run = BenchRun(path, 0)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=None, text=True, cwd=path.parent.parent, env=env
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if is_figure(line):
                run.figures.append(line)
                echo(line)
            elif line.strip():
                log(f"  {path.stem}: {line}")
        run.returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        run.returncode = 124
    run.seconds = time.perf_counter() - start
    return run


def device_name() -> str:
    """'cuda (<GPU name>)' when torch sees a GPU, else 'cpu'."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda ({torch.cuda.get_device_name(0)})"
    except Exception:  # noqa: BLE001 - no torch means CPU
        pass
    return "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick where accepted")
    parser.add_argument("--only", help="run only benchmarks whose name contains this")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument("--dir", type=Path, default=HERE, help="directory of bench_*.py")
    args = parser.parse_args(argv)

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    benches = discover(args.dir, args.only)
    if not benches:
        log(f"no bench_*.py in {args.dir}")
        return 1
    log(f"# {len(benches)} benchmarks on {device_name()}{' (quick)' if args.quick else ''}")
    failed = []
    for path in benches:
        quick = args.quick and accepts_quick(path)
        log(f"# {path.name}{' --quick' if quick else ''}")
        run = run_bench(
            path,
            quick=args.quick,
            timeout=args.timeout,
            echo=lambda s: print(s, flush=True),
            log=log,
        )
        n = len(run.figures)
        log(f"# {path.name}: exit {run.returncode}, {n} figures, {run.seconds:.1f} s")
        if run.returncode != 0:
            failed.append(path.name)
    if failed:
        log(f"# failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
