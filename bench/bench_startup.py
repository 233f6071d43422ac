"""CLI start-up: ``protodb --help``, ``ls``, ``history``, ``show`` and ``vocab ls`` as whole
processes, this checkout's code against a base commit's, in one run.

    python -m bench.bench_startup [--runs 7] [--base e753e6b] [--quick]

Extracts the base commit's code (``git archive``, default e753e6b: the listings opened the
bank through lancedb and parsed through typer) into a temporary directory and builds a small
bank through the CLI with each code (three classes of the offline test world, n=2, and one
vocabulary; about 15 s each: a bank of this checkout's schema may be newer than the base code
reads, and the new code would migrate an older one), then starts every command --runs times
with each code on its bank, alternating new, old, new, old, ... so a drift in the machine's
load falls on both, after one warm-up run of each that is not counted (it also checks that
``--help``, ``ls`` and ``vocab ls`` print the same; history and show print times and recipe
ids that differ between the banks). Each run is a fresh ``python`` that imports that
code's ``protodb.cli.app`` and calls ``main()``, as the ``protodb`` script does; the first row,
``python -c pass``, is the interpreter's own start-up on this machine.

Prints a table (wall seconds min and median, CPU seconds median, and the new/old ratio of the
median wall times), then one figure per command: ``startup_<command>``, the new median wall
time, its baseline the base commit's. --quick: 3 runs of --help, ls and history only.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.common import figure

ROOT = Path(__file__).resolve().parents[1]

# The code a run imports: the checkout named by argv[1] (its protodb/, cli/ as protodb.cli and
# schemas/ as protodb.schemas, as pyproject's package-dir maps them), whatever is installed.
LAUNCHER = """import importlib.util, os, sys
root = sys.argv.pop(1)
sys.path.insert(0, root)
import protodb
for sub in ("cli", "schemas"):
    where = os.path.join(root, sub)
    spec = importlib.util.spec_from_file_location(
        "protodb." + sub, os.path.join(where, "__init__.py"), submodule_search_locations=[where]
    )
    module = sys.modules["protodb." + sub] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
from protodb.cli.app import main
sys.argv[0] = "protodb"
sys.exit(main())
"""

CLASSES = ["red disc", "grass", "sky"]


def protodb_cmd(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, str(root), *args]


def commands(bank: Path, quick: bool) -> list[tuple[str, list[str] | None]]:
    """(name, protodb arguments) to time; None: the bare interpreter."""
    b = ["--bank", str(bank)]
    rows = [
        ("python -c pass", None),
        ("--help", ["--help"]),
        ("ls", [*b, "ls"]),
        ("history", [*b, "history"]),
        ("show grass", [*b, "show", "grass"]),
        ("vocab ls", [*b, "vocab", "ls"]),
    ]
    return rows[:4] if quick else rows


def timed(cmd: list[str], out: Path) -> tuple[float, float, int]:
    """Run ``cmd`` once (stdout and stderr to ``out``): (wall s, CPU s, exit status)."""
    with open(out, "wb") as f:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def extract(base: str, into: Path) -> str:
    """The tree of commit ``base`` of this repository, written under ``into``; its short id."""
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", base],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return rev


def build_bank(bank: Path, root: Path = ROOT) -> None:
    """Three world classes (n=2) and vocabulary w1, through the CLI of the code at ``root``."""
    world = ["--bank", str(bank), "--profile", "world"]
    for args in (["add", *CLASSES, "--n", "2", "-q"], ["vocab", "create", "w1", *CLASSES]):
        run = subprocess.run(protodb_cmd(root, *world, *args), capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"building the bench bank failed:\n{run.stdout}{run.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command and code")
    parser.add_argument("--base", default="e753e6b", help="the commit whose code is 'old'")
    parser.add_argument("--quick", action="store_true", help="3 runs of --help, ls, history")
    args = parser.parse_args()
    runs = 3 if args.quick else max(1, args.runs)
    with tempfile.TemporaryDirectory(prefix="protodb-bench-startup-") as tmp:
        tmp = Path(tmp)
        old_root = tmp / "old"
        rev = extract(args.base, old_root)
        t = time.perf_counter()
        codes = {"new": ROOT, "old": old_root}
        banks = {k: tmp / f"bank-{k}" for k in codes}
        for k, r in codes.items():
            build_bank(banks[k], r)
        print(f"banks of {len(CLASSES)} world classes built in {time.perf_counter() - t:.0f} s; "
              f"old: {rev}, new: {ROOT}", file=sys.stderr)  # fmt: skip
        rows = []
        listed = {k: commands(b, args.quick) for k, b in banks.items()}
        for i, (name, _) in enumerate(listed["new"]):
            cmd = {
                k: [sys.executable, "-c", "pass"]
                if listed[k][i][1] is None
                else protodb_cmd(r, *listed[k][i][1])
                for k, r in codes.items()
            }
            printed = {}
            for k in codes:  # warm-up, and what each prints
                timed(cmd[k], tmp / f"{k}.out")
                printed[k] = (tmp / f"{k}.out").read_bytes()
            same = name in ("--help", "ls", "vocab ls")
            if same and printed["new"] != printed["old"]:
                print(f"warning: {name!r} prints differently with the old code", file=sys.stderr)
            wall: dict[str, list[float]] = {"new": [], "old": []}
            cpu: dict[str, list[float]] = {"new": [], "old": []}
            for _ in range(runs):
                for k in codes:
                    w, c, status = timed(cmd[k], tmp / f"{k}.out")
                    if status:
                        sys.exit(f"{name} ({k}) exited {status}:\n{(tmp / f'{k}.out').read_text()}")
                    wall[k].append(w)
                    cpu[k].append(c)
            rows.append((name, wall, cpu))
    print_table(rows, rev, runs)
    for name, wall, _ in rows[1:]:
        new, old = statistics.median(wall["new"]), statistics.median(wall["old"])
        slug = name.strip("-").replace(" ", "_")
        figure(
            f"startup_{slug}",
            new,
            "s",
            f"{rev} {old:.2f} s ({new / old:.2f}x), median wall of {runs} whole processes",
            digits=2,
        )


def print_table(rows, rev: str, runs: int) -> None:
    head = (
        f"{'protodb ...':<16}{'old min':>9}{'old med':>9}{'new min':>9}{'new med':>9}"
        f"{'new/old':>9}{'old cpu':>9}{'new cpu':>9}"
    )
    print(f"wall and CPU seconds of whole processes, {runs} runs each; old = {rev}")
    print(head)
    for name, wall, cpu in rows:
        med = {k: statistics.median(v) for k, v in wall.items()}
        print(
            f"{name:<16}{min(wall['old']):>9.2f}{med['old']:>9.2f}{min(wall['new']):>9.2f}"
            f"{med['new']:>9.2f}{med['new'] / med['old']:>8.2f}x"
            f"{statistics.median(cpu['old']):>9.2f}{statistics.median(cpu['new']):>9.2f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
