"""The export format: its manifest (provenance and content hashes), limits and results."""

from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import dataclass, field

import pyarrow as pa

from protodb.bank.commit import current_user
from protodb.bank.schema import (
    SCHEMA_VERSION,
    now,
)
from protodb.bank.store import Bank
from protodb.errors import ProtodbError

FORMAT = "protodb-export"
FORMAT_VERSION = 1
FILE_SUFFIXES = (".protodb", ".tar")
MAX_DIM = 65536
MAX_BLOB = 256 * 2**20  # one PNG / attribution map / cell map
MAX_MEMBER = 64 * 2**30
SUPPORT_KEY = ("class_key", "generator_id", "seed", "index")
MASK_KEY = ("class_key", "generator_id", "seed", "n", "mask_source", "index")
# the fields of a set / support whose difference makes the same key a conflict
SET_PROVENANCE = ("generator_config", "extractor_config", "n", "mask_source", "dim")
SUPPORT_PROVENANCE = ("generator_config", "runtime", "height", "width")


class ImportRefused(ProtodbError):
    """An import or merge was refused; the target bank is unchanged."""


@dataclass
class ShareResult:
    """What an export / import / merge did.

    target: where it went; vocabs: vocabulary names written; sets: prototype sets written
    (skipped: already present with the same provenance); supports: support images written;
    manifest: the export's manifest (see :func:`build_manifest`).
    """

    target: str
    vocabs: list[str] = field(default_factory=list)
    sets: int = 0
    skipped: int = 0
    supports: int = 0
    manifest: dict = field(default_factory=dict)


def table_sha256(table: pa.Table) -> str:
    """sha256 of a table's content, independent of row order and chunking: rows sorted by
    every scalar column, serialised as one Arrow IPC stream without schema metadata."""
    keys = [
        f.name
        for f in table.schema
        if pa.types.is_string(f.type) or pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
    ]
    if table.num_rows and keys:
        table = table.sort_by([(k, "ascending") for k in keys])
    table = table.replace_schema_metadata(None).combine_chunks()
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    return hashlib.sha256(sink.getvalue()).hexdigest()


def build_manifest(bank: Bank, tables: dict[str, pa.Table], vocab: str | None) -> dict:
    """The manifest of an export. Keys: format, format_version, schema_version,
    protodb_version, created_at (ISO UTC), created_by (user@host), source (bank URI), vocab
    (name or null for a whole bank), generators / extractors (id -> config, which carries the
    model id and revision), recipes (recipe id -> prototype recipe; schema 3 on), tables
    (name -> {rows, sha256})."""
    from protodb.version import __version__

    sets = tables["sets"].to_pylist()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "protodb_version": __version__,
        "created_at": now().isoformat(),
        "created_by": f"{current_user()}@{platform.node()}",
        "source": bank.uri,
        "vocab": vocab,
        "generators": {s["generator_id"]: json.loads(s["generator_config"]) for s in sets},
        "extractors": {s["extractor_id"]: json.loads(s["extractor_config"]) for s in sets},
        "recipes": {s["recipe_id"]: json.loads(s["recipe"]) for s in sets},
        "tables": {
            name: {"rows": t.num_rows, "sha256": table_sha256(t)} for name, t in tables.items()
        },
    }


def refuse(msg: str) -> ImportRefused:
    return ImportRefused(msg + "; the target bank is unchanged")
