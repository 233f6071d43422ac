"""Join or start a Ray cluster for protodb's work units.

Settings measured on a 2-core machine (REFERENCE 5): ``address="local"`` for a new cluster (a
stale cluster file otherwise makes ``ray.init`` try to join a dead cluster), token auth off for a
local one (``RAY_AUTH_MODE=disabled``), no dashboard, no usage stats, a small object store.
Actors ask for fractional CPUs (:func:`actor_cpus`): an actor pool that takes every CPU starves
Ray Data's read tasks and hangs without a word.
Every actor, of ``add --ray`` and ``segment --ray`` alike, gets the driver's environment that
:func:`actor_env` forwards (object store, model hubs, protodb's settings).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from protodb.errors import ProtodbError

#: the address that means "start a cluster on this machine" (``--ray`` without a value)
LOCAL = "local"

#: prefixes of the driver's environment variables every actor inherits (:func:`actor_env`)
ACTOR_ENV_PREFIXES = ("AWS_", "HF_", "TRANSFORMERS_", "DIFFUSERS_", "PROTODB_")
#: the driver's own variables, never forwarded: the commit fault point of the tests
#: (``protodb.bank.commit.FAULT_ENV``) kills the process that commits, which is the driver alone
ACTOR_ENV_EXCLUDED = frozenset({"PROTODB_FAULT_KILL_AFTER_COMMITS"})


def require_ray():
    """The ray module, or one line naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ProtodbError(
            "--ray needs Ray, which is not installed; pip install 'protodb[ray]'"
        ) from None
    return ray


@dataclass(frozen=True)
class ClusterInfo:
    """What the cluster offers: CPUs and GPUs (totals, may be fractional), nodes alive, and
    whether this call started it (then :func:`shutdown` stops it)."""

    address: str
    cpus: float
    gpus: float
    nodes: int
    started: bool


_ADDRESS = re.compile(r"^(local|auto|(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5})$")


def looks_like_address(token: str) -> bool:
    """Whether ``token`` has the form of a Ray address (see :func:`check_address`)."""
    return bool(_ADDRESS.match(token))


def check_address(address: str | None) -> str:
    """``address`` as given ("local" for None or ""), or ProtodbError naming it."""
    if address in (None, ""):
        return LOCAL
    if not _ADDRESS.match(address):
        raise ProtodbError(
            f"--ray {address!r} is not a Ray address; give HOST:PORT, ray://HOST:PORT or 'auto' "
            "(--ray alone starts a cluster of this machine)"
        )
    return address


def connect(address: str | None = LOCAL, *, num_cpus: float | None = None) -> ClusterInfo:
    """Attach this process to Ray.

    address: "local" (or None / ""): start a cluster of this machine (``num_cpus`` logical CPUs,
    default the machine's); "auto" or "HOST:PORT": join a running one (``ray start --head``);
    "ray://HOST:PORT": Ray Client. A process already attached is reused whatever the address.
    Raises ProtodbError (one line) when the address cannot be reached.
    """
    address = check_address(address)
    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if not ray.is_initialized():
        local = address == LOCAL
        if local:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        if not local and address != "auto":
            _probe(address)
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        if local:
            kw.update(
                num_cpus=int(num_cpus) if num_cpus else None,
                _node_ip_address="127.0.0.1",
                object_store_memory=int(os.environ.get("PROTODB_RAY_OBJECT_STORE", 256 * 2**20)),
            )
        try:
            with warnings.catch_warnings():
                # ray.init starts its processes with fork + exec at once (subprocess), which
                # Lance's fork hooks warn about; nothing of Lance runs in them (REFERENCE 5)
                warnings.filterwarnings("ignore", message=".*fork.*", category=UserWarning)
                warnings.filterwarnings("ignore", message=".*fork.*", category=RuntimeWarning)
                ray.init(address=LOCAL if local else address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ProtodbError(
                f"--ray {address}: cannot reach a Ray cluster there ({first[:160]}); "
                "give HOST:PORT of a running head (ray start --head), or no address for a local one"
            ) from None
        started = local
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ClusterInfo(
        address=address or LOCAL,
        cpus=float(res.get("CPU", 0.0)),
        gpus=float(res.get("GPU", 0.0)),
        nodes=nodes,
        started=started,
    )


def _probe(address: str, timeout: float = 5.0) -> None:
    """One TCP connection to HOST:PORT, so that a wrong address fails in seconds (``ray.init``
    retries a dead one for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ProtodbError(
            f"--ray {address}: nothing answers there ({e.strerror or type(e).__name__}); "
            "give HOST:PORT of a running head (ray start --head), or no address for a local one"
        ) from None


def shutdown(info: ClusterInfo) -> None:
    """Stop the cluster :func:`connect` started (a joined one is left running)."""
    if info.started:
        require_ray().shutdown()


def actor_cpus(cpus: float, actors: int) -> float:
    """CPUs to ask per actor so that ``actors`` of them leave room for Ray's own tasks
    (reads, writes): at most half a CPU each on a small cluster, never the whole of it."""
    if actors < 1:
        raise ProtodbError(f"--workers {actors} must be >= 1")
    share = max(cpus - 0.5, 0.25) / actors
    return round(min(share, 1.0) if cpus > 2 else min(share, 0.5), 3)


def actor_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables a Ray actor of ``add --ray`` or ``segment --ray`` gets from the
    driver (``environ``, default ``os.environ``), for ``runtime_env={"env_vars": ...}``.

    Forwarded, so that every node reads the same bank and models the driver would:

    - ``AWS_*``: the object store (endpoint, region, ``AWS_ALLOW_HTTP``, keys, profile) of an
      ``s3://`` bank, input or output;
    - ``HF_*``, ``TRANSFORMERS_*``, ``DIFFUSERS_*``: the model hubs' cache folders, token and
      offline switches (``HF_HOME``, ``HF_HUB_OFFLINE``, ...), so that an actor loads the models
      the driver found and never downloads what the driver would not;
    - ``PROTODB_*``: protodb's own settings (bank, profile, device, cache, the workers' fault
      point of the tests), except :data:`ACTOR_ENV_EXCLUDED`.

    Not forwarded: thread counts (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``): Ray sets an
    actor's ``OMP_NUM_THREADS`` from the CPUs it asks for (at least 1) unless the actor's
    environment sets it, and ``add``'s CPU actors set torch's threads from those CPUs too, so
    that actors sharing a node do not oversubscribe it (a driver's value would override that);
    nor anything else (``PATH``, ``HOME``, ``CUDA_VISIBLE_DEVICES``: the node's own, or Ray's).
    """
    environ = os.environ if environ is None else environ
    return {
        k: v
        for k, v in environ.items()
        if k.startswith(ACTOR_ENV_PREFIXES) and k not in ACTOR_ENV_EXCLUDED
    }
