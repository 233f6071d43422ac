"""Vocabulary load: the prototypes of a 200-class vocabulary from a bank of 20,000 classes.

    python -m bench.bench_vocab_load [--classes 20000] [--per-class 100] [--dim 768]
        [--vocab 200] [--repeats 20] [--cache DIR] [--rebuild]

Builds (once, into --cache; about 3 GB at the default size, several minutes) a bank with one
float16 prototype table laid out as ``protodb gc`` leaves it: rows clustered by class, each
set's row range in its ``sets`` record. Then prints, measured in the same run:

- vocab_load_first: the first ``Bank.load_prototypes`` of --vocab random classes after the
  bank is opened (reads the sets index and checks each data file's page layout);
- vocab_load_warm: the same load again (median of --repeats warm calls: range lookup, the
  vector bytes read straight from the data files, per-row metadata from the sets' records);
- vocab_load_filtered: the plain filtered LanceDB read of the same rows
  (``class_key IN (...)``, median of 3), the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import BENCH_EXTRACTOR as EXTRACTOR
from bench.common import BENCH_GENERATOR as GENERATOR
from bench.common import append_synthetic_sets, figure


def build(path: Path, classes: int, per_class: int, dim: int, batch: int = 500) -> None:
    """A bank of ``classes`` sets of ``per_class`` float16 vectors each, clustered by class."""
    from tqdm import tqdm

    from protodb.bank.store import open_bank

    bank = open_bank(str(path))
    table = bank.ensure_prototype_table(EXTRACTOR, dim, "float16")
    rng = np.random.default_rng(0)
    for lo in tqdm(range(0, classes, batch), desc="build bank", file=sys.stderr):
        keys = [f"class {i:05d}" for i in range(lo, min(lo + batch, classes))]
        append_synthetic_sets(bank, table, keys, per_class, dim, rng, row_start=lo * per_class)
    bank.log("bench build", {"classes": classes, "per_class": per_class, "dim": dim})
    (path / "COMPLETE").write_text(_fingerprint())


def _fingerprint() -> str:
    """The bank schema the cached bank was built with (a changed schema rebuilds it)."""
    import hashlib
    import json

    from protodb.bank.schema import schema_spec

    return hashlib.sha256(json.dumps(schema_spec(), sort_keys=True).encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=20000, help="classes in the bank")
    parser.add_argument("--per-class", type=int, default=100, help="prototype vectors per class")
    parser.add_argument("--dim", type=int, default=768, help="vector dimension")
    parser.add_argument("--vocab", type=int, default=200, help="classes in the vocabulary")
    parser.add_argument("--repeats", type=int, default=20, help="warm loads to time")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "protodb"
        / "bench",
        help="directory for the bench bank (built once, reused)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached bank")
    args = parser.parse_args()

    from protodb.bank.schema import prototype_table_name, sql_str
    from protodb.bank.store import open_bank

    path = args.cache / f"vocab_load-{args.classes}x{args.per_class}x{args.dim}"
    done = path / "COMPLETE"
    if args.rebuild or not done.exists() or done.read_text() != _fingerprint():
        shutil.rmtree(path, ignore_errors=True)
        t = time.perf_counter()
        build(path, args.classes, args.per_class, args.dim)
        print(f"built {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    table = prototype_table_name(EXTRACTOR)
    rng = np.random.default_rng(1)
    picked = sorted(rng.choice(args.classes, size=args.vocab, replace=False).tolist())
    keys = [f"class {i:05d}" for i in picked]
    sets = [(k, GENERATOR, 0) for k in keys]

    bank = open_bank(str(path), create=False)
    version = bank.versions()[table]
    sets_version = bank.versions()["sets"]

    def fast():
        return bank.load_prototypes(table, EXTRACTOR, sets, version, sets_version=sets_version)

    t = time.perf_counter()
    vectors, meta = fast()
    first = time.perf_counter() - t
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        vectors, meta = fast()
        times.append(time.perf_counter() - t)
    warm = statistics.median(times)

    ds = bank.dataset(table, version)
    where = f"class_key IN ({', '.join(sql_str(k) for k in keys)})"
    base = []
    for _ in range(3):
        t = time.perf_counter()
        plain = ds.to_table(filter=where)
        base.append(time.perf_counter() - t)
    baseline = statistics.median(base)

    # the same rows either way
    want = args.vocab * args.per_class
    assert vectors.shape == (want, args.dim) and plain.num_rows == want, (vectors.shape, plain)
    assert sorted(meta.column("class_key").to_pylist()) == sorted(
        plain.column("class_key").to_pylist()
    )
    mb = vectors.nbytes / 2**20
    print(
        f"{args.vocab} of {args.classes} classes: {want} vectors x {args.dim} "
        f"{vectors.dtype} ({mb:.0f} MiB)",
        file=sys.stderr,
    )
    figure("vocab_load_first", first * 1000, "ms", digits=1)
    figure(
        "vocab_load_warm",
        warm * 1000,
        "ms",
        f"filtered read {baseline * 1000:.1f} ms ({warm / baseline:.3f}x)",
        digits=1,
    )
    figure("vocab_load_filtered", baseline * 1000, "ms", digits=1)


if __name__ == "__main__":
    main()
