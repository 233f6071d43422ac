"""gc's memory: a clustered rewrite of a large prototype table, streamed vs. read whole.

    python -m bench.bench_gc [--classes 2000] [--per-class 100] [--dim 768] [--quick]

Builds a bank with one float16 prototype table of --classes sets (appended in shuffled class
order, so gc has to reorder them) plus the rows of one killed add (orphans), copies it, and
runs in a fresh process each:

- gc_peak_rss: ``protodb.bank.maintenance.gc`` (plans from the key columns, streams the rows in
  batches of about 64 MiB) -- its peak resident memory above the process's baseline;
- the baseline: the same rewrite done the way gc did it before (the whole table read into
  memory, sorted, written back).

Also prints both wall times. The default table is 2,000 x 100 x 768 float16 (293 MiB of
vectors); --quick builds a quarter of it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.common import BENCH_EXTRACTOR as EXTRACTOR
from bench.common import append_synthetic_sets, figure

ROOT = Path(__file__).resolve().parents[1]  # children run `-m bench.bench_gc` from here


def build(path: Path, classes: int, per_class: int, dim: int, batch: int = 250) -> None:
    """A bank of ``classes`` sets appended in shuffled order, and one set's orphan rows."""
    from protodb.bank.schema import sql_str
    from protodb.bank.store import open_bank

    bank = open_bank(str(path))
    table = bank.ensure_prototype_table(EXTRACTOR, dim, "float16")
    rng = np.random.default_rng(0)
    order = rng.permutation(classes)
    for lo in range(0, classes, batch):
        keys = [f"class {i:05d}" for i in order[lo : lo + batch]]
        append_synthetic_sets(bank, table, keys, per_class, dim, rng, row_start=None)
        if lo == 0:  # a killed add: rows without a completion record
            dead = bank.read(table, f"class_key = {sql_str(keys[0])}")
            dead = dead.set_column(
                dead.schema.get_field_index("write_id"), "write_id", pa.array(["dead"] * per_class)
            )
            bank.append(table, dead)
    bank.log("bench build", {"classes": classes})


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str, mode: str) -> None:
    """Run one rewrite in this (fresh) process and print its figures as JSON."""
    from protodb.bank import maintenance
    from protodb.bank.schema import prototype_table_name
    from protodb.bank.store import open_bank

    bank = open_bank(path, create=False)
    table = prototype_table_name(EXTRACTOR)
    base = _peak_mib()
    t = time.perf_counter()
    if mode == "stream":
        maintenance.gc(bank)
    else:  # the whole table in memory, as gc did before
        live = set(bank.read("sets").column("write_id").to_pylist())
        rows, _, _ = maintenance._cluster(bank.read(table), live)
        maintenance._overwrite(bank, table, rows)
    seconds = time.perf_counter() - t
    got = bank.read(table, columns=["class_key"]).column("class_key").to_pylist()
    assert got == sorted(got) and "dead" not in got
    print(json.dumps({"peak_mib": _peak_mib() - base, "seconds": seconds, "rows": len(got)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=2000)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--quick", action="store_true", help="a quarter of the classes")
    parser.add_argument("--child", nargs=2, metavar=("BANK", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    classes = args.classes // 4 if args.quick else args.classes
    with tempfile.TemporaryDirectory(prefix="protodb-bench-gc-") as tmp:
        src = Path(tmp) / "bank"
        t = time.perf_counter()
        build(src, classes, args.per_class, args.dim)
        mib = classes * args.per_class * args.dim * 2 / 2**20
        print(f"built {classes} classes ({mib:.0f} MiB of vectors) in "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)  # fmt: skip
        out = {}
        for mode in ("stream", "whole"):
            bank = Path(tmp) / mode
            shutil.copytree(src, bank)
            run = subprocess.run(
                [sys.executable, "-m", "bench.bench_gc", "--child", str(bank), mode],
                capture_output=True, text=True, check=False, cwd=ROOT,
            )  # fmt: skip
            if run.returncode:
                sys.exit(f"{mode} rewrite failed:\n{run.stderr}")
            out[mode] = json.loads(run.stdout.strip().splitlines()[-1])
            shutil.rmtree(bank)
    s, w = out["stream"], out["whole"]
    figure(
        "gc_peak_rss",
        s["peak_mib"],
        "MiB",
        f"whole-table rewrite {w['peak_mib']:.0f} MiB ({s['peak_mib'] / w['peak_mib']:.3f}x) "
        f"for {mib:.0f} MiB of vectors",
        digits=0,
    )
    figure(
        "gc_seconds",
        s["seconds"],
        "s",
        f"whole-table rewrite {w['seconds']:.2f} s ({s['seconds'] / w['seconds']:.3f}x)",
        digits=2,
    )


if __name__ == "__main__":
    main()
