"""``add --ray`` throughput: units ((class, seed)) per second with 1 and 2 Ray workers against
one process, all measured in the same run on the same classes, each into a fresh bank.

    python -m bench.bench_scale [--classes 6] [--n 2] [--steps 4] [--profile tiny] [--quick]
                                [--s3]

Each configuration builds the same units: the one-process run (``db.add`` on one torch thread,
as each actor runs) is the baseline; the Ray runs use a cluster of this machine started once
(4 logical CPUs, actors at fractional CPUs; its start-up is printed, not counted) and count from
the first unit scheduled to the last committed (``RayExecutor.seconds``), so an actor's model
load is in it, as it is in the one-process run. The figures: units/s per configuration, and
the ratios 2 workers / 1 worker and each against one process; and the driver's seconds of
commits per unit (its capacity, the first limit of a single writer). ``--s3``: the Ray runs'
banks on a local S3 (moto's threaded server, with the commit lock), the one-process bank too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import figure

NAMES = [
    "red apple", "grass", "blue cup", "sky", "dog", "tree", "car", "road", "cat", "water",
    "chair", "wall", "boat", "sand", "bird", "cloud",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=6, help="units (one seed each)")
    parser.add_argument("--n", type=int, default=2, help="support images per unit")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps")
    parser.add_argument("--profile", default="tiny", choices=["tiny", "world-learned"])
    parser.add_argument("--quick", action="store_true", help="4 units, n=1, 2 steps")
    parser.add_argument("--s3", action="store_true", help="banks on a local S3 (moto)")
    args = parser.parse_args()
    if args.quick:
        args.classes, args.n, args.steps = 4, 1, 2
    if not 1 <= args.classes <= len(NAMES):
        parser.error(f"--classes must be 1 to {len(NAMES)}")

    import protodb
    from protodb.profiles import get_profile
    from protodb.scale.add import RayExecutor
    from protodb.scale.cluster import connect, shutdown
    from protodb.settings import torch_threads

    names = NAMES[: args.classes]
    extractors = get_profile(args.profile).extractors  # tiny: dinov2; world-learned: sd
    kw = dict(n=args.n, steps=args.steps, extractors=extractors, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        root = str(local_s3() if args.s3 else Path(tmp))
        db = protodb.connect(f"{root}/one", profile=args.profile, device="cpu")
        start = time.perf_counter()
        with torch_threads(1):
            db.add(names, **kw)
        one = len(names) / (time.perf_counter() - start)
        start = time.perf_counter()
        info = connect("local", num_cpus=4)
        print(f"Ray cluster of this machine started in {time.perf_counter() - start:.1f} s "
              f"({info.cpus:g} logical CPUs)")  # fmt: skip
        try:
            rates, commits = {}, {}
            for workers in (1, 2):
                db = protodb.connect(f"{root}/ray{workers}", profile=args.profile, device="cpu")
                ex = RayExecutor(address="local", workers=workers)
                db.add(names, executor=ex, **kw)
                rates[workers] = len(names) / ex.seconds
                commits[workers] = ex.commit_seconds / len(names)
                for w in ex.stats:
                    print(f"  {workers} worker(s): worker {w.worker} built {w.units} units "
                          f"in {w.seconds:.1f} s")  # fmt: skip
        finally:
            shutdown(info)
    what = f"{len(names)} units, n={args.n}, {args.steps} steps, {args.profile}"
    figure("add units/s, one process", one, "units/s", f"- ({what})")
    for workers, rate in rates.items():
        figure(f"add --ray units/s, {workers} worker(s)", rate, "units/s",
               f"one process ({rate / one:.2f}x)")  # fmt: skip
    figure("add --ray, 2 workers / 1 worker", rates[2] / rates[1], "x", "1 worker (1.00x)")
    where = "S3 (moto)" if args.s3 else "local directory"
    figure("driver commit time per unit", max(commits.values()), "s/unit", f"- (bank: {where})")


def local_s3() -> str:
    """Start moto's threaded S3 in this process, set the environment LanceDB and the commit
    lock read, and return an s3:// prefix with a fresh bucket."""
    import os

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT=f"http://{host}:{port}", AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
    )  # fmt: skip
    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="bench")
    return "s3://bench/scale"


if __name__ == "__main__":
    main()
