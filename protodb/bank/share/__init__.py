"""Sharing banks: ``export`` a vocabulary (or the whole bank), ``import`` an export, ``merge``
another bank.

An export is itself a small protodb bank (a deep copy: fresh Lance files, never a shallow clone
pointing back at the source) whose ``meta`` table holds a manifest: provenance (generator and
extractor configs with model ids and revisions, protodb version, when and by whom) and the
sha256 of every table's content. It is written either to a directory / LanceDB URI or to one
self-contained file (an uncompressed tar of that bank plus ``manifest.json``).

Import treats its input as hostile: archive members must stay inside the target (no absolute
paths, no ``..``, no links or devices), schemas, vector dims, sizes and finiteness are checked,
hashes are verified, nothing is unpickled or executed, and a key that exists in the target with
other provenance is refused naming the key and the difference. Everything is checked before the

Modules: manifest (format, hashes, results), export, validate (reading and checking a source),
merge (import and merge).
"""
