"""Shared fixtures: one tiny bank for the whole session, copies of it for tests that write.

Everything runs on the ``tiny`` profile: the real model classes (diffusers UNet / VAE,
transformers CLIPTextModel / Dinov2Model, open_clip CLIP) built from tiny configs with
deterministic random weights. Nothing is mocked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import protodb
from protodb.bank.store import open_bank

CLASSES = ["red apple", "grass"]
N_SUPPORT = 4


@dataclass
class TinyBank:
    """The session bank: two classes (n=4 each) and the vocabulary ``v1`` over both."""

    path: Path
    db: protodb.ProtoDB
    add_results: list
    vocab: object


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """Tests do not inherit the caller's protodb settings."""
    for var in ("PROTODB_BANK", "PROTODB_PROFILE", "PROTODB_DEVICE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def tiny_bank(tmp_path_factory) -> TinyBank:
    path = tmp_path_factory.mktemp("session") / "bank"
    db = protodb.connect(path, profile="tiny", device="cpu")
    results = db.add(CLASSES, n=N_SUPPORT, extractors=("dinov2",), progress=False)
    vocab = db.create_vocab("v1", CLASSES)
    return TinyBank(path=path, db=db, add_results=results, vocab=vocab)


@pytest.fixture
def bank_copy(tiny_bank, tmp_path) -> Path:
    """A private copy of the session bank (a few hundred KB of Lance files) to write into."""
    dst = tmp_path / "bank"
    shutil.copytree(tiny_bank.path, dst)
    return dst


def make_image(height: int = 50, width: int = 70, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 RGB test image: gradients, a disc and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), np.float64)
    img[..., 0] = 255 * xx / max(width - 1, 1)
    img[..., 1] = 255 * yy / max(height - 1, 1)
    disc = (yy - height / 2) ** 2 + (xx - width / 3) ** 2 < (min(height, width) / 4) ** 2
    img[disc] = (200, 30, 40)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


@pytest.fixture
def image() -> np.ndarray:
    return make_image()


@dataclass
class GrownBank:
    """A copy of the session bank that grew after ``v1`` was pinned: a new class ``sky`` and a
    second prototype set of ``grass`` (seed 1)."""

    path: Path
    db: protodb.ProtoDB


@pytest.fixture(scope="session")
def grown_bank(tiny_bank, tmp_path_factory) -> GrownBank:
    path = tmp_path_factory.mktemp("grown") / "bank"
    shutil.copytree(tiny_bank.path, path)
    db = protodb.connect(path, profile="tiny", device="cpu")
    db.add(["sky"], n=2, extractors=("dinov2",), progress=False)
    db.add(["grass"], n=2, seed=1, extractors=("dinov2",), progress=False)
    return GrownBank(path=path, db=db)


@dataclass
class WorldFixture:
    """The offline TEST WORLD at its documented defaults: a bank with every world class (n=8,
    seed 0) and vocabulary ``world``, and the 24-scene dataset of seed 0 (README figures)."""

    bank: Path
    data: Path
    db: protodb.ProtoDB


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> WorldFixture:
    from protodb.world.dataset import make_dataset

    root = tmp_path_factory.mktemp("world")
    db = protodb.connect(root / "bank", profile="world", device="cpu")
    db.build_world(n=8, seed=0, progress=False)
    make_dataset(root / "data", n=24, seed=0)
    return WorldFixture(bank=root / "bank", data=root / "data", db=db)


def state_checksum(module) -> str:
    """sha256 of a torch module's state dict (names and tensor bytes, in name order)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def bank_state(path: Path) -> dict:
    """Everything observable about a bank: table versions and the files on disk."""
    bank = open_bank(str(path), create=False)
    files = sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and "lock" not in p.name
    )
    return {"versions": bank.versions(), "files": files}


# ---------------------------------------------------------------------- object storage

S3_BUCKET = "protodb-test"


@dataclass
class S3Server:
    """moto's S3 server in this process (threaded), with the environment LanceDB and protodb's
    S3 lock read set in ``os.environ`` (so subprocesses inherit it): AWS_ENDPOINT,
    AWS_ALLOW_HTTP, keys, region. ``client`` is a boto3 client on it."""

    endpoint: str
    client: object

    def uri(self, name: str = "bank") -> str:
        """A fresh ``s3://`` location nobody has written."""
        return f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}/{name}"

    def upload(self, local: Path, uri: str) -> None:
        """Copy a local bank directory to ``uri`` (lock files left behind)."""
        from concurrent.futures import ThreadPoolExecutor

        prefix = uri[len(f"s3://{S3_BUCKET}/") :]
        files = [p for p in local.rglob("*") if p.is_file() and "lock" not in p.name]
        with ThreadPoolExecutor(8) as pool:
            for done in [
                pool.submit(
                    self.client.upload_file, str(p), S3_BUCKET, f"{prefix}/{p.relative_to(local)}"
                )
                for p in files
            ]:
                done.result()

    def copy(self, src: str, dst: str) -> None:
        """Copy every object under bank ``src`` to bank ``dst`` (server-side)."""
        from concurrent.futures import ThreadPoolExecutor

        head = f"s3://{S3_BUCKET}/"
        a, b = src[len(head) :], dst[len(head) :]
        with ThreadPoolExecutor(8) as pool:
            jobs = [
                pool.submit(
                    self.client.copy_object,
                    Bucket=S3_BUCKET,
                    Key=f"{b}/{k}",
                    CopySource={"Bucket": S3_BUCKET, "Key": f"{a}/{k}"},
                )
                for k in self.keys(src)
            ]
            for job in jobs:
                job.result()

    def delete(self, uri: str) -> None:
        """Remove every object under ``uri``."""
        prefix = uri[len(f"s3://{S3_BUCKET}/") :]
        for k in self.keys(uri):
            self.client.delete_object(Bucket=S3_BUCKET, Key=f"{prefix}/{k}")

    def keys(self, uri: str) -> list[str]:
        prefix = uri[len(f"s3://{S3_BUCKET}/") :] + "/"
        out, token = [], None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            page = self.client.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix, **kw)
            out += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                return sorted(out)


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 (moto's ThreadedMotoServer) for the session; see :class:`S3Server`."""
    server_mod = pytest.importorskip("moto.server")
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=S3_BUCKET)
    try:
        yield S3Server(endpoint=endpoint, client=client)
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(params=["local", "s3"])
def store(request) -> str:
    """Where a test's bank lives: "local" (a temporary directory) or "s3" (moto)."""
    return request.param


@pytest.fixture
def bank_uri(store, request, tmp_path) -> str:
    """A fresh bank location (nothing there yet) on the test's ``store``."""
    if store == "s3":
        return request.getfixturevalue("s3_server").uri()
    return str(tmp_path / "bank")


@pytest.fixture
def bank_copy_uri(store, request, tiny_bank, tmp_path) -> str:
    """A private copy of the session bank on the test's ``store`` (local dir or S3)."""
    if store == "s3":
        s3 = request.getfixturevalue("s3_server")
        uri = s3.uri()
        s3.upload(tiny_bank.path, uri)
        return uri
    dst = tmp_path / "bank"
    shutil.copytree(tiny_bank.path, dst)
    return str(dst)
