"""The bank: a LanceDB database of classes, support images, prototypes and vocabularies.

Tables are built from ``schemas/bank.json``. Every write makes a new Lance table version, and
every operation appends one row to the ``log`` table carrying the table versions after it: that
row's ``version`` is the bank version that ``protodb history`` lists.

Crash safety and concurrency:

- A prototype set's rows carry a fresh ``write_id``; the set becomes visible only when its
  completion record (a ``sets`` row naming that ``write_id``) lands, after all its prototype and
  cell rows. Rows of an attempt killed before its record are orphans: no read returns them and
  ``protodb gc`` removes them.
- Keyed writes (:meth:`Bank.insert_new`, :meth:`Bank.write_set`, :meth:`Bank.upsert_class`) drop
  duplicates inside the batch, then check for existing keys and commit under the bank's commit
  lock, so several processes adding the same or different classes lose and duplicate nothing.
  The lock is a ``flock`` on a file in a local bank directory; object stores have no such lock
  (one writer at a time there, see the README). Lance commit conflicts are retried with backoff.
- Writers hold a shared "writer" lock for their whole operation; ``gc`` takes it exclusively and
  refuses to run while any writer is active.

Readers always check out the latest committed version of a table before reading, so handles
opened earlier see other processes' commits.

Modules: store (:class:`Bank`, made of the parts below), tables (handles and datasets), commit
(locks, retries), journal (all-or-nothing operations), writes (keyed writes), rows (the row
encodings of every table), reads (row lookups, shared with the read-only view), loads (fast
prototype loads), history (versions, tags), migrations (older schemas), recipe (the recipe id in
a set's key), schema (tables, keys, packed metadata), lance_direct (direct vector reads),
readonly (listings through pylance alone, without lancedb), vocab (pinned vocabularies),
maintenance (gc, restore), share (export, import, merge).
"""

__all__ = ["Bank", "open_bank", "LogEntry", "SetKey"]

_HOMES = {"Bank": "store", "open_bank": "store", "LogEntry": "schema", "SetKey": "schema"}


def __getattr__(name: str):
    """The public names, imported on first use: a light module of the bank (``recipe``, whose
    defaults ``protodb add --help`` shows) must not pull pyarrow and lancedb in with it."""
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"protodb.bank.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'protodb.bank' has no attribute {name!r}")
