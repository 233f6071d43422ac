"""``segment --ray``: Ray Data over an image list, an actor pool holding the assembled vocabulary.

The driver (the process that calls :func:`segment_ray`) does what is cheap and must be right
before anything runs: it expands the inputs (local files, folders and glob patterns exactly as
``segment``; ``s3://bucket/prefix`` folders, objects and patterns), checks every local image's
header, refuses inputs whose outputs would collide, reads the summaries of finished images when
resuming (``skip_existing``), and only then joins or starts the cluster. The images left are a
``ray.data.from_items`` dataset of (index, source, stem) rows, mapped with ``map_batches`` on an
actor pool (``ActorPoolStrategy(size=workers)``, fractional CPUs, REFERENCE 5) whose actors each
open the bank, assemble the vocabulary once (the same :class:`protodb.query.handle.VocabHandle`
and query config as ``segment``, from a :class:`protodb.runtime.Runtime` of the driver's
settings) and then, per image: read it (downloading an ``s3://`` one to a temporary file),
segment it, and write the files of :mod:`protodb.query.outputs`:

- to a local ``out`` folder directly (every node must see it: a local cluster, or a shared file
  system);
- to an ``s3://bucket/prefix`` ``out`` through a temporary folder, each file uploaded under the
  prefix, the summary ``<stem>.json`` last (with the ``s3://`` locations of the others in it),
  so that its presence still means the image is finished and ``skip_existing`` resumes there.

The actors return one small row per image (its index and summary as JSON, or the one-line error
a bad image gave); the driver draws a progress bar over them and returns the summaries in input
order. Object-store settings: ``AWS_ENDPOINT`` (or ``AWS_ENDPOINT_URL[_S3]``), ``AWS_REGION``,
``AWS_ALLOW_HTTP`` and the keys, as for a bank on S3; the driver's values (with the rest of
:func:`protodb.scale.cluster.actor_env`) travel to the actors in the job's runtime environment,
so that both read and write the same store. The bank itself must be reachable from every node
(a path all nodes share, or an ``s3://`` bank).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from protodb.errors import NotFoundError, ProtodbError
from protodb.images import IMAGE_SUFFIXES, check_image, expand_paths, load_rgb
from protodb.progress import Progress
from protodb.query.outputs import summary_path, write_outputs
from protodb.runtime import Runtime
from protodb.scale.cluster import (
    LOCAL,
    actor_cpus,
    actor_env,
    check_address,
    connect,
    require_ray,
    shutdown,
)
from protodb.settings import Settings


def is_s3(uri: str | os.PathLike) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/part`` -> ("bucket", "key/part"); a URI without a bucket raises."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ProtodbError(f"{uri!r} names no bucket; give s3://BUCKET/PREFIX")
    return bucket, key


def _client():
    """A boto3 S3 client configured as for a bank on S3 (protodb.bank.objlock.s3_client)."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise ProtodbError(
            "s3:// inputs and outputs need boto3; pip install 'protodb[s3]'"
        ) from None
    from protodb.bank.objlock import s3_client

    return s3_client()


def _s3_call(uri: str, what: str, call: Callable):
    """``call()``, its S3 errors (no bucket, no access, no server) as one line naming ``uri``."""
    try:
        return call()
    except ProtodbError:
        raise
    except Exception as e:  # noqa: BLE001 - botocore's errors are many; each becomes one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ProtodbError(
            f"{what} {uri!r} failed ({first[:160]}); check the bucket, the keys and AWS_ENDPOINT"
        ) from None


@dataclass(frozen=True)
class Source:
    """One input image: ``uri`` a local path (as ``segment`` reports it) or ``s3://`` URI;
    ``stem`` the name its outputs take."""

    uri: str
    stem: str


def _list_keys(client, bucket: str, prefix: str, *, delimiter: str | None) -> list[str]:
    keys, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        if delimiter:
            kw["Delimiter"] = delimiter
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, **kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
        if not token:
            return keys


def expand_s3(uri: str, client=None) -> list[str]:
    """An ``s3://`` input -> image URIs: an object as itself; a prefix as a folder (its images,
    not those of sub-prefixes, sorted); a pattern (``*``, ``?``, ``[``; ``**`` crosses ``/``) as
    the images whose keys match it. Nothing found raises NotFoundError."""
    bucket, key = split_s3(uri)
    client = client or _client()
    head = f"s3://{bucket}/"
    if any(c in key for c in "*?["):
        fixed = key[: min(key.find(c) for c in "*?[" if c in key)]
        keys = _s3_call(uri, "listing", lambda: _list_keys(client, bucket, fixed, delimiter=None))
        found = sorted(
            k
            for k in keys
            if k.lower().endswith(IMAGE_SUFFIXES)
            and (fnmatch.fnmatchcase(k, key) if "**" in key else _match_parts(k, key))
        )
        if not found:
            raise NotFoundError(f"pattern {uri!r} matches no image; check the pattern")
        return [head + k for k in found]
    if key and not key.endswith("/") and key.lower().endswith(IMAGE_SUFFIXES):
        keys = _s3_call(uri, "listing", lambda: _list_keys(client, bucket, key, delimiter="/"))
        if key in keys:
            return [uri]
        raise NotFoundError(f"image {uri!r} does not exist; check the bucket and key")
    prefix = key if not key or key.endswith("/") else key + "/"
    keys = _s3_call(uri, "listing", lambda: _list_keys(client, bucket, prefix, delimiter="/"))
    found = sorted(k for k in keys if k.lower().endswith(IMAGE_SUFFIXES))
    if not found:
        raise NotFoundError(
            f"{uri!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); check the bucket and prefix"
        )
    return [head + k for k in found]


def _match_parts(key: str, pattern: str) -> bool:
    """A glob match where ``*`` stays within one ``/``-separated part, as on a file system."""
    a, b = key.split("/"), pattern.split("/")
    return len(a) == len(b) and all(fnmatch.fnmatchcase(x, y) for x, y in zip(a, b, strict=True))


def expand_sources(paths: Sequence[str | os.PathLike], client=None) -> list[Source]:
    """The images of ``paths`` in order (local ones as protodb.images.expand_paths gives them,
    each header checked; ``s3://`` ones listed), refusing two that share a stem."""
    sources: list[Source] = []
    local: list[str | os.PathLike] = []

    def flush() -> None:
        for p in expand_paths(local) if local else []:
            check_image(p)
            sources.append(Source(str(p), p.stem))
        local.clear()

    for raw in paths:
        if is_s3(raw):
            flush()
            client = client or _client()
            for uri in expand_s3(str(raw), client):
                sources.append(Source(uri, PurePosixPath(uri).stem))
        else:
            local.append(raw)
    flush()
    dupes = sorted(s for s, k in Counter(s.stem for s in sources).items() if k > 1)
    if dupes:
        raise ProtodbError(
            f"several inputs share the name {dupes[0]!r}; their outputs would collide"
        )
    return sources


class Sink:
    """Where the outputs go: a local folder or an ``s3://bucket/prefix``."""

    def __init__(self, out: str | os.PathLike, client=None) -> None:
        self.out = str(out)
        self.s3 = is_s3(out)
        self._client = client
        if self.s3:
            self.bucket, key = split_s3(self.out)
            self.prefix = key.rstrip("/")
        else:
            self.dir = Path(out)

    @property
    def client(self):
        if self._client is None:
            self._client = _client()
        return self._client

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def check(self) -> None:
        """A local ``out`` that is a file, or an ``s3://`` one whose bucket cannot be reached,
        raises ProtodbError."""
        if not self.s3:
            if self.dir.exists() and not self.dir.is_dir():
                raise ProtodbError(f"--out {self.out!r} is a file; give a folder for the outputs")
            return
        _s3_call(self.out, "--out", lambda: self.client.head_bucket(Bucket=self.bucket))

    def finished(self, stems: set[str]) -> dict[str, dict]:
        """The summaries already written for ``stems`` (the images that are done)."""
        if not self.s3:
            return {
                s: json.loads(summary_path(self.dir, s).read_text())
                for s in sorted(stems)
                if summary_path(self.dir, s).exists()
            }
        head = self.key("")
        keys = _s3_call(
            self.out,
            "listing",
            lambda: _list_keys(self.client, self.bucket, head, delimiter="/"),
        )
        done = {k[len(head) : -len(".json")] for k in keys if k.endswith(".json")} & stems
        out = {}
        for s in sorted(done):
            body = _s3_call(
                self.uri(f"{s}.json"),
                "reading",
                lambda s=s: self.client.get_object(Bucket=self.bucket, Key=self.key(f"{s}.json")),
            )["Body"].read()
            out[s] = json.loads(body)
        return out


def segment_one(handle, source: Source, sink: Sink, vocab: str, save_scores: bool) -> dict:
    """Segment one image with ``handle`` and write its outputs to ``sink``; its summary (as
    protodb.query.batch gives it, with "skipped": False)."""
    with tempfile.TemporaryDirectory(prefix="protodb-seg-") as tmp:
        if is_s3(source.uri):
            bucket, key = split_s3(source.uri)
            local = Path(tmp) / PurePosixPath(key).name
            obj = _s3_call(
                source.uri, "reading", lambda: sink.client.get_object(Bucket=bucket, Key=key)
            )
            local.write_bytes(obj["Body"].read())
            try:
                array = load_rgb(local)
            except ProtodbError as e:
                raise type(e)(str(e).replace(str(local), source.uri)) from None
        else:
            array = load_rgb(source.uri)
        result = handle.segment(array)
        extra = {"image": source.uri, "vocab": vocab}
        if not sink.s3:
            summary = write_outputs(
                result, array, sink.dir, source.stem, save_scores=save_scores, extra=extra
            )
        else:
            staged = Path(tmp) / "out"
            summary = write_outputs(
                result, array, staged, source.stem, save_scores=save_scores, extra=extra
            )
            for field in ("label_png", "overlay_png", "rle_json", "scores_npy"):
                if summary[field] is None:
                    continue
                name = Path(summary[field]).name
                body = Path(summary[field]).read_bytes()
                _s3_call(
                    sink.uri(name),
                    "writing",
                    lambda n=name, b=body: sink.client.put_object(
                        Bucket=sink.bucket, Key=sink.key(n), Body=b
                    ),
                )
                summary[field] = sink.uri(name)
            name = f"{source.stem}.json"  # last: its presence marks the image as finished
            body = json.dumps(summary, indent=2).encode()
            _s3_call(
                sink.uri(name),
                "writing",
                lambda: sink.client.put_object(Bucket=sink.bucket, Key=sink.key(name), Body=body),
            )
    return {**summary, "skipped": False}


class SegmentActor:
    """A Ray Data actor: the bank opened and the vocabulary assembled once, then one image after
    another (``__call__`` on a batch of rows "i", "src", "stem" -> rows "i", "summary" (JSON),
    "error" (one line, or "")). A user error (a bad image, a vocabulary the worker cannot read)
    is a row's "error", never an exception, so that the driver reports it as one line."""

    def __init__(
        self,
        *,
        settings: Settings,
        at: int | None,
        vocab: str,
        config,
        out: str,
        save_scores: bool,
    ) -> None:
        """``settings``, ``at``: the session the actor opens (a Runtime of the driver's bank
        and profile, on the actor's device)."""
        self.vocab, self.save_scores, self.error = vocab, save_scores, ""
        try:
            self.handle = Runtime(settings, at=at).vocab(vocab, config)
            self.handle.segmenter  # noqa: B018 - assemble the prototypes now, once per actor
            self.sink = Sink(out)
        except ProtodbError as e:
            self.error = str(e)

    def __call__(self, batch: dict) -> dict:
        rows: dict[str, list] = {"i": [], "summary": [], "error": []}
        for i, src, stem in zip(batch["i"], batch["src"], batch["stem"], strict=True):
            summary, error = "", self.error
            if not error:
                try:
                    source = Source(str(src), str(stem))
                    summary = json.dumps(
                        segment_one(self.handle, source, self.sink, self.vocab, self.save_scores)
                    )
                except ProtodbError as e:
                    error = str(e)
            rows["i"].append(int(i))
            rows["summary"].append(summary)
            rows["error"].append(error)
        return rows


def default_workers(gpus: float) -> int:
    """One actor per GPU, else 2 CPU actors."""
    return max(int(gpus), 1) if gpus >= 1 else 2


def segment_ray(
    runtime: Runtime,
    paths: Sequence[str | os.PathLike],
    *,
    vocab: str,
    out: str | os.PathLike,
    address: str | None = LOCAL,
    workers: int | None = None,
    config=None,
    skip_existing: bool = False,
    save_scores: bool = False,
    progress: bool | Progress = True,
    on_image: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Segment ``paths`` with vocabulary ``vocab`` of ``runtime``'s bank on Ray and write the
    outputs of protodb.query.outputs to ``out`` (a folder or ``s3://bucket/prefix``).

    ``paths``: files, folders and glob patterns, local or ``s3://`` (see :func:`expand_s3`).
    ``address``: the cluster (protodb.scale.cluster.connect; "local" starts one of this machine,
    stopped again at the end). ``workers``: actors (default one per GPU, else 2). ``config``:
    query options (default ``runtime.query_config()``). ``skip_existing``: images whose
    ``<stem>.json`` is in ``out`` are not redone. Returns one summary per image in input order,
    as ``ProtoDB.segment`` (a local image's summary is the same dict, byte for byte the same files);
    ``on_image`` is called with each as it is done (the skipped first, the others as they
    finish, in no set order). A bad input is one ProtodbError, raised before any cluster starts
    where it can be seen from here (every local image's header is read; an ``s3://`` image is
    read by its actor, and its error stops the run)."""
    address = check_address(address)
    require_ray()
    if workers is not None and workers < 1:
        raise ProtodbError(f"--workers {workers} must be >= 1")
    config = config or runtime.query_config()
    runtime.vocab(vocab, config)  # an unknown vocabulary is one line before any cluster starts
    client = None
    if is_s3(out) or any(is_s3(p) for p in paths):
        client = _client()
    sources = expand_sources(paths, client)
    sink = Sink(out, client)
    sink.check()
    summaries: list[dict | None] = [None] * len(sources)
    prog = Progress.of(progress)
    done = sink.finished({s.stem for s in sources}) if skip_existing else {}
    todo = [i for i, s in enumerate(sources) if s.stem not in done]
    with prog.bar("segment", len(sources), "img") as bar:
        for i, s in enumerate(sources):
            if s.stem in done:
                summaries[i] = {**done[s.stem], "skipped": True}
                bar.update(1)
                if on_image is not None:
                    with prog.interrupt():
                        on_image(summaries[i])
        if todo:
            run = _run(runtime, sources, todo, sink, vocab, config, save_scores, address, workers)
            with contextlib.closing(run):
                for i, summary in run:
                    summaries[i] = summary
                    bar.set_postfix_str(Path(sources[i].uri).name)
                    bar.update(1)
                    if on_image is not None:
                        with prog.interrupt():
                            on_image(summary)
    return summaries  # type: ignore[return-value]


def _no_restarts(ds_map) -> dict:
    """``max_restarts=0`` for the actors where map_batches still takes Ray's remote arguments
    as keywords (deprecated, to go in Ray 2.64): with restarts, Ray's driver logs an "E" line
    per actor about its constructor arguments in the object store (ray-project/ray#53727). An
    actor lost with its node then fails the run, which ``skip_existing`` resumes."""
    import inspect

    kinds = {p.kind for p in inspect.signature(ds_map).parameters.values()}
    return {"max_restarts": 0} if inspect.Parameter.VAR_KEYWORD in kinds else {}


def _run(runtime, sources, todo, sink, vocab, config, save_scores, address, workers):
    """Yield (index, summary) of the images ``todo`` as the actor pool finishes them."""
    info = connect(address)
    try:
        import ray.data
        from ray.data import ActorPoolStrategy

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # protodb draws its own bar
        ctx.print_on_execution_start = False
        ctx.enable_auto_log_stats = False
        settings = runtime.settings
        gpu = settings.device != "cpu" and info.gpus >= 1
        n = workers or default_workers(info.gpus if gpu else 0.0)
        remote: dict = {"num_cpus": actor_cpus(info.cpus, n)}
        if gpu:
            remote["num_gpus"] = round(min(1.0, info.gpus / n), 3)
        env = actor_env()
        if env:
            remote["runtime_env"] = {"env_vars": env}
        extra = _no_restarts(ds_map=ray.data.Dataset.map_batches)
        items = [{"i": i, "src": sources[i].uri, "stem": sources[i].stem} for i in todo]
        # small blocks: an actor takes one block at a time, so they balance the load and keep
        # the progress moving (one image a block for short lists, at most 32 for long ones)
        per_block = min(max(len(items) // (8 * n), 1), 32)
        blocks = -(-len(items) // per_block)
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        with warnings.catch_warnings():  # max_restarts goes through the deprecated **kwargs
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            ds = ds.map_batches(
                SegmentActor,
                fn_constructor_kwargs=dict(
                    settings=replace(settings, device=settings.device if gpu else "cpu"),
                    at=runtime.at,
                    vocab=vocab,
                    config=config,
                    out=sink.out,
                    save_scores=save_scores,
                ),
                compute=ActorPoolStrategy(size=n),
                batch_size=1,
                batch_format="numpy",
                **remote,
                **extra,
            )
        quiet = logging.getLogger("ray.data")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "execution finished", "progress bars disabled"
        try:
            for row in ds.iter_rows():
                if row["error"]:
                    raise ProtodbError(str(row["error"]))
                yield int(row["i"]), json.loads(row["summary"])
        finally:
            quiet.setLevel(level)
    finally:
        shutdown(info)
