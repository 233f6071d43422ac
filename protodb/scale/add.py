"""``add --ray``: one (class, seed) a unit of work on Ray actors, one writer committing.

The driver (the process that runs ``add``) opens the bank, finds the units whose sets are all
there (they are skipped before anything is scheduled), starts the actors and hands each a unit
at a time. An actor keeps its models loaded between units; it reads the bank (support images
and masks already stored are reused) but writes nothing: it runs the same
:func:`protodb.synthesis.add.add_class` as one machine does, into a
:class:`protodb.synthesis.add.UnitSink`, and returns that. The driver commits each returned unit
with the keyed, journalled writes of ``add`` (:meth:`UnitSink.commit`), so the bank's guarantees
do not change: a killed driver loses the units in flight and nothing else (every committed set
is whole), a lost worker loses its unit (Ray restarts the actor and retries it, up to
``retries`` times), and a re-run does only the units not yet in the bank.

Actors: one per GPU (``num_gpus=1``, device cuda) when the cluster has GPUs, else ``workers``
CPU actors (default 2) at fractional CPUs (:func:`protodb.scale.cluster.actor_cpus`). They get
the driver's environment that :func:`protodb.scale.cluster.actor_env` forwards (an object-store
bank needs the same credentials and endpoint on every node, the models the same caches).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from protodb.errors import ProtodbError
from protodb.progress import Progress
from protodb.scale.cluster import LOCAL, actor_cpus, actor_env, connect, shutdown

#: tests: with this set to a file path, the first actor to build a unit (when the file does not
#: exist yet) creates the file and exits at once, a worker lost mid-run
FAULT_WORKER_ENV = "PROTODB_FAULT_KILL_WORKER"


@dataclass
class WorkerStats:
    """One actor's share of the run: units returned, seconds spent building them (inside the
    actor) and where it ran."""

    worker: int
    node: str = ""
    units: int = 0
    seconds: float = 0.0

    @property
    def units_per_s(self) -> float:
        return self.units / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RayExecutor:
    """Run an ``add``'s (class, seed) units on Ray (see the module docstring;
    protodb.synthesis.run_add.add_classes hands them over).

    address: "local" (a cluster of this machine, started and stopped by the call), "auto" or
    "HOST:PORT" (a running cluster's head). workers: actors (default one per GPU, else 2).
    cpus_per_worker: CPUs each CPU actor asks for (default :func:`actor_cpus`: fractional, so
    Ray's own tasks keep room). retries: times a unit whose actor died is retried on its
    restarted actor. reorder: finished units per actor held back at most while an earlier
    unit is still in flight; units commit in job order (the bank then reads as a one-process
    run's, row order and history included) unless that many wait. After a run, ``stats`` has
    one :class:`WorkerStats` per actor and ``seconds`` the wall time from the first unit
    scheduled to the last committed, ``commit_seconds`` the driver's time in commits (its
    capacity: units / commit_seconds).
    """

    address: str | None = LOCAL
    workers: int | None = None
    cpus_per_worker: float | None = None
    retries: int = 1
    reorder: int = 4
    stats: list[WorkerStats] = field(default_factory=list)
    seconds: float = 0.0
    commit_seconds: float = 0.0

    def add(
        self,
        runtime,
        jobs: Sequence[tuple[str, int]],
        *,
        generator,
        extractors,
        request,
        progress: bool | Progress = True,
        on_result: Callable | None = None,
    ) -> list:
        """Build the missing sets of ``jobs`` ((class, seed) pairs) on the actors and commit
        them into ``runtime``'s bank (a protodb.runtime.Runtime: its bank, and the settings the
        actors open it with). ``request``: the checked protodb.synthesis.request.AddRequest
        (n, parts, mask_source, kind, batch_size). Returns one AddResult per job, in job
        order."""
        from protodb.errors import NotFoundError
        from protodb.synthesis.add import plan_class

        try:
            known = _KnownSets(runtime.open_existing())  # one read of the sets table
        except NotFoundError:
            known = None  # the bank is made below once the cluster answers (actors never do)
        results: list = [None] * len(jobs)
        todo: list[int] = []
        for i, (name, seed) in enumerate(jobs):
            res, missing, _ = plan_class(
                known, name, generator=generator, extractors=extractors, seed=seed, n=request.n,
                mask_source=request.mask_source, kind=request.kind, parts=request.parts,
            )  # fmt: skip
            if missing:
                todo.append(i)
            else:
                results[i] = res
        prog = Progress.of(progress)
        for i in range(len(jobs)):
            if results[i] is not None and on_result is not None:
                on_result(results[i])
        if not todo:
            return results
        info = connect(self.address)
        bank = runtime.bank  # opens, or makes, the bank the actors will read
        # what each actor's add_class takes besides (class, seed)
        options = dict(
            generator=generator, extractors=list(extractors), n=request.n,
            batch_size=request.batch_size, kind=request.kind, mask_source=request.mask_source,
            parts=request.parts,
        )  # fmt: skip
        try:
            self._run(bank, runtime.settings, jobs, todo, results, info, prog, on_result, options)
        finally:
            shutdown(info)
        return results

    def _run(self, bank, settings, jobs, todo, results, info, prog, on_result, options) -> None:
        """Schedule the units ``todo`` (indices into ``jobs``) on new actors that open the bank
        of ``settings`` (protodb.settings.Settings) read-only, and commit each returned unit
        into ``bank``."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        gpus = int(info.gpus)
        n_workers = self.workers or (gpus if gpus else 2)
        n_workers = min(n_workers, len(todo))
        if gpus:
            resources = dict(num_gpus=1, num_cpus=self.cpus_per_worker or 1)
            device, threads = "cuda", 0
        else:
            cpus = self.cpus_per_worker or actor_cpus(info.cpus, n_workers)
            resources = dict(num_cpus=cpus)
            # torch threads as the CPUs asked (at least one): no oversubscription, and a
            # one-thread actor computes bit for bit what a one-thread process does
            device, threads = settings.device, max(1, int(cpus))
        env = actor_env()
        worker_cls = ray.remote(
            max_restarts=self.retries, max_task_retries=self.retries, **resources
        )(UnitWorker)
        actors = [
            worker_cls.options(runtime_env={"env_vars": env}).remote(
                settings.bank, settings.profile, device, w, threads
            )
            for w in range(n_workers)
        ]
        self.stats = [WorkerStats(w) for w in range(n_workers)]
        self.commit_seconds = 0.0
        queue = deque(todo)
        pending: dict = {}
        idle = list(range(n_workers))
        lost: list[str] = []
        failure: str | None = None
        start = time.perf_counter()

        def submit() -> None:
            while idle and queue and failure is None:
                w, i = idle.pop(0), queue.popleft()
                name, seed = jobs[i]
                pending[actors[w].build.remote(name, seed, options)] = (w, i)

        done: dict[int, tuple] = {}  # job index -> (result, sink), awaiting its turn
        order = deque(todo)  # commit order: the jobs' (see reorder)

        def commit(i: int, res, sink) -> None:
            t0 = time.perf_counter()
            sink.commit(bank, res)
            self.commit_seconds += time.perf_counter() - t0
            results[i] = res
            bar.update(1)
            bar.set_postfix_str(res.name)
            if on_result is not None:
                with prog.interrupt():
                    on_result(res)

        def flush(limit: int) -> None:
            """Commit the finished units whose turn it is, then the earliest finished while
            more than ``limit`` wait."""
            while done:
                if order[0] in done:
                    i = order.popleft()
                elif len(done) > limit:
                    i = next(j for j in order if j in done)
                    order.remove(i)
                else:
                    return
                commit(i, *done.pop(i))

        with prog.bar("units", len(todo), "unit") as bar:
            submit()
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                w, i = pending.pop(ref)
                name, seed = jobs[i]
                try:
                    res, sink, node, seconds = ray.get(ref)
                except RayActorError:  # the actor died and its retries are spent: it is gone
                    lost.append(f"{name} (seed {seed})")
                    order.remove(i)
                    bar.update(1)
                    flush(self.reorder * n_workers)
                    submit()  # its share goes to the other actors
                    continue
                except RayTaskError as e:
                    if not isinstance(e.cause, ProtodbError):
                        raise
                    failure = failure or str(e.cause)
                    order.remove(i)
                    idle.append(w)
                    flush(self.reorder * n_workers)
                    continue
                stats = self.stats[w]
                stats.node = node
                stats.units += 1
                stats.seconds += seconds
                done[i] = (res, sink)
                idle.append(w)
                submit()  # the actor builds its next unit while the driver commits this one
                # commits go in job order (the bank then reads as a one-process run's), unless
                # a slow unit holds back more than `reorder` finished ones
                flush(self.reorder * n_workers)
            flush(0)
        self.seconds = time.perf_counter() - start
        for a in actors:
            ray.kill(a)
        if failure is not None:
            raise ProtodbError(failure)
        if lost:
            raise ProtodbError(
                f"{len(lost)} unit(s) lost with their worker: {', '.join(lost[:5])}; "
                "the rest is in the bank: run the same add again to do only these"
            )


class _KnownSets:
    """The sets a bank holds, from one read of its ``sets`` table: the ``find_set`` that
    :func:`protodb.synthesis.add.plan_class` asks, for every (class, seed, extractor) of a run."""

    COLUMNS = ("class_key", "generator_id", "seed", "extractor_id", "recipe_id")

    def __init__(self, bank) -> None:
        rows = bank.sets().select(list(self.COLUMNS)).to_pylist()
        self.keys = {tuple(r[c] for c in self.COLUMNS) for r in rows}

    def find_set(self, key) -> bool:
        return tuple(getattr(key, c) for c in self.COLUMNS) in self.keys


class UnitWorker:
    """A Ray actor's body: builds (class, seed) units with models kept loaded between them.
    ``build`` returns (AddResult, UnitSink, node id, seconds). threads: torch intra-op
    threads (0: torch's default)."""

    def __init__(self, bank_uri: str, profile: str, device: str, index: int, threads: int) -> None:
        self.bank_uri, self.profile, self.device, self.index = bank_uri, profile, device, index
        if threads:
            import torch

            torch.set_num_threads(threads)

    def build(self, name: str, seed: int, options: dict):
        import ray

        from protodb.bank.store import open_bank
        from protodb.synthesis.add import UnitSink, add_class

        start = time.perf_counter()
        bank = open_bank(self.bank_uri, create=False)  # each unit sees the latest commits
        sink = UnitSink()
        res = add_class(
            bank, name, seed=seed, device=self.device, progress=False, sink=sink, **options
        )
        marker = os.environ.get(FAULT_WORKER_ENV)
        if marker and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(json.dumps([name, seed]))
            os._exit(1)  # a lost worker, mid-unit: its result never reaches the driver
        return res, sink, ray.get_runtime_context().get_node_id(), time.perf_counter() - start
