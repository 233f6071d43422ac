"""Schema migrations: an older bank brought to this protodb's schema in place, on open.

Schema 1 -> 2 gave rows write ids and sets row ranges; 2 -> 3 gave sets recipe ids. A bank of
a newer schema, or one with no migration, is refused with one line.
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa

from protodb.bank.commit import COMMIT_LOCK, commit_point, retry_commit
from protodb.bank.recipe import legacy_recipe
from protodb.bank.schema import SCHEMA_VERSION, sql_str
from protodb.errors import BankError, NeedsMigrationError

log = logging.getLogger("protodb.bank")


def check_schema(bank, *, migrate: bool) -> None:
    """Refuse a bank this protodb cannot read, and migrate one of schema 1 or 2 (``migrate``
    False: refuse it with :class:`NeedsMigrationError` instead)."""
    found = int(bank.meta().get("schema_version", "0"))
    if found > SCHEMA_VERSION:
        raise BankError(
            f"bank {bank.uri!r} has schema version {found}, newer than this protodb "
            f"understands ({SCHEMA_VERSION}); upgrade protodb (pip install -U protodb)"
        )
    if found in (1, 2):
        if not migrate:
            raise NeedsMigrationError(
                f"bank {bank.uri!r} has schema version {found}; open it once with this "
                f"protodb to migrate it (`protodb --bank {bank.uri} ls`)"
            )
        migrate_from(bank, found)
    elif found < SCHEMA_VERSION:
        raise BankError(
            f"bank {bank.uri!r} has schema version {found}; this protodb needs "
            f"{SCHEMA_VERSION} and has no migration from it: re-create the bank"
        )


def migrate_from(bank, found: int) -> None:
    """Migrate an older bank in place, under the commit lock, after finishing (or rolling
    back) an operation a killed process left; one line is logged (``protodb.bank``). A
    local bank this process cannot write is read as it is (reads fill in recipe ids,
    :func:`~protodb.bank.schema.read_sets`; writes are refused as on any read-only bank)."""
    if bank.locks.dir is not None:
        try:
            os.close(bank.locks.lock_file(COMMIT_LOCK))
        except BankError:
            return
    with bank.commit_lock():
        if bank.meta().get("journal") is not None:
            bank.recover()
            if bank.meta().get("journal") is not None:
                raise BankError(
                    f"bank {bank.uri!r} needs a schema migration but an operation on it is "
                    "running or was interrupted; wait for it and run this again"
                )
        was = found = int(bank.meta().get("schema_version", "0"))
        if found == 1:
            migrate_1_to_2(bank)
            found = 2
        if found == 2:
            migrate_2_to_3(bank)
            log.warning(
                "protodb: migrated bank %s from schema %s to %s (prototype sets are now "
                "keyed by recipe id too)",
                bank.uri,
                was,
                SCHEMA_VERSION,
            )


def migrate_2_to_3(bank) -> None:
    """Schema 2 -> 3: recipe ids. Every set gets the recipe id and config of the recipe it
    was built with (its stored mask source and n, K = 32, every level), in one commit of
    ``sets``; vocabularies are left as they are (a class entry without a recipe id names
    the one set of its key at the vocabulary's pinned versions)."""
    add_recipe_columns(bank)
    bank.table("meta").update(where="key = 'schema_version'", values={"value": "3"})
    commit_point()
    bank.log("migrate", {"from": 2, "to": 3})


def add_recipe_columns(bank) -> None:
    """Give ``sets`` its ``recipe_id`` / ``recipe`` columns where it has none (a schema-2
    table, or one ``restore`` took back to a version from before the migration) and fill
    every empty one with its set's legacy recipe (:func:`~protodb.bank.schema.read_sets`):
    one commit per (mask source, n) pair; run again, it finishes what a killed run left."""
    tbl = bank.table("sets")
    if "recipe_id" not in tbl.schema.names:
        fields = [pa.field("recipe_id", pa.string()), pa.field("recipe", pa.string())]
        retry_commit(lambda: tbl.add_columns(pa.schema(fields)))
    empty = bank.read("sets", "recipe_id IS NULL", columns=["mask_source", "n"]).to_pylist()
    for m, n in sorted({(p["mask_source"], int(p["n"])) for p in empty}):
        r = legacy_recipe(m, n)
        where = f"recipe_id IS NULL AND mask_source = {sql_str(m)} AND n = {n}"
        values = {"recipe_id": r.id, "recipe": r.to_json()}
        retry_commit(lambda w=where, v=values: tbl.update(where=w, values=v))


def migrate_1_to_2(bank) -> None:
    """Schema 1 -> 2: write ids and row ranges. A legacy set's rows get a write id made
    from its key (``legacy:class:generator:seed:extractor``), so they read, export and
    merge like any set's; row ranges are unknown (-1) until ``gc`` records them."""
    legacy_id = (
        "concat('legacy:', class_key, ':', generator_id, ':', CAST(seed AS STRING), ':', "
        "extractor_id)"
    )
    for name in bank.table_names():
        tbl = bank.table(name)
        have = set(tbl.schema.names)
        new: dict[str, str] = {}
        if name.startswith("prototypes") or name in ("cells", "sets"):
            new["write_id"] = legacy_id
        if name == "sets":
            new["row_start"] = "CAST(-1 AS BIGINT)"
            new["row_count"] = "CAST(-1 AS INT)"
        new = {k: v for k, v in new.items() if k not in have}
        if new:
            retry_commit(lambda t=tbl, n=new: t.add_columns(n))
        if name == "sets" and "row_meta" not in have:
            field = pa.field("row_meta", pa.binary())
            retry_commit(lambda t=tbl, f=field: t.add_columns(f))
    bank.table("meta").update(where="key = 'schema_version'", values={"value": "2"})
    bank.log("migrate", {"from": 1, "to": 2})
