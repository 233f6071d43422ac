"""Vocabularies: named, immutable pins of class prototype sets and the table versions read.

``create_vocab`` resolves each class to one completed prototype set per extractor and records
the version of every bank table, so :func:`protodb.query.assemble.assemble` reads exactly the
same rows forever, whatever is added to the bank later. It pins each class's kind (stuff or
thing) too: the query's stuff/thing handling reads the vocabulary's kinds, never the bank's
``classes`` row or the lexicon again. A vocabulary made before kinds were pinned reads its
kinds from the ``classes`` table at its pinned version (:func:`class_kinds`), as before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import pyarrow as pa

from protodb.bank.schema import now, sql_str
from protodb.bank.store import Bank
from protodb.errors import NotFoundError, ParameterError, ProtodbError
from protodb.extractors.base import ExtractorConfig
from protodb.names import canonical, class_key

VOCAB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_CLASSES = 255


@dataclass(frozen=True)
class VocabClass:
    """A class of a vocabulary and the prototype set it pins: (generator, seed, recipe) with
    each of the vocabulary's extractors. recipe_id "": a vocabulary made before recipe ids
    (schema 3), which names the one set of its key at its pinned versions.

    kind: "stuff" or "thing", as the query uses it (the stuff filter, the pre-filter);
    kind_source: where it came from: "dataset <name>" (``--from-dataset``), "user", or the
    ``classes`` row's source when pinned ("user", "lexicon", "auto"; "unknown" for a class of
    unknown kind, a thing to the query); "" / "": a vocabulary made before kinds were pinned,
    whose reads fill both from the ``classes`` table (the source then ends "(not pinned)")."""

    name: str
    class_key: str
    generator_id: str
    seed: int
    recipe_id: str = ""
    kind: str = ""
    kind_source: str = ""

    def set_key(self) -> tuple[str, str, int, str]:
        """(class_key, generator_id, seed, recipe_id), as ``load_prototypes`` takes it."""
        return (self.class_key, self.generator_id, int(self.seed), self.recipe_id)


@dataclass(frozen=True)
class VocabExtractor:
    extractor_id: str
    prototype_table: str
    config: ExtractorConfig


@dataclass
class Vocabulary:
    """A pinned vocabulary. Label i (1-based) of a segmentation is ``classes[i - 1]``."""

    name: str
    classes: list[VocabClass]
    extractors: list[VocabExtractor]
    versions: dict[str, int]
    bank_version: int
    created_at: object = None

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": [c.__dict__ for c in self.classes],
            "extractors": [
                {"extractor_id": e.extractor_id, "prototype_table": e.prototype_table}
                for e in self.extractors
            ],
            "versions": self.versions,
            "bank_version": self.bank_version,
            "created_at": str(self.created_at) if self.created_at else None,
        }


def vocab_tag(name: str) -> str:
    """The Lance tag that pins a vocabulary's table versions."""
    from protodb.bank.schema import VOCAB_TAG_PREFIX

    return VOCAB_TAG_PREFIX + name


def _from_row(r: dict) -> Vocabulary:
    return Vocabulary(
        name=r["name"],
        classes=[VocabClass(**_class_fields(c)) for c in json.loads(r["classes"])],
        extractors=[
            VocabExtractor(e["extractor_id"], e["prototype_table"], ExtractorConfig(**e["config"]))
            for e in json.loads(r["extractors"])
        ],
        versions={k: int(v) for k, v in json.loads(r["versions"]).items()},
        bank_version=int(r["bank_version"]),
        created_at=r["created_at"],
    )


def _class_fields(c: dict) -> dict:
    names = ("name", "class_key", "generator_id", "seed", "recipe_id", "kind", "kind_source")
    return {k: v for k, v in c.items() if k in names}


def _query_kind(kind: str, source: str) -> tuple[str, str]:
    """A ``classes`` row's (kind, kind_source) as the query uses it: unknown is a thing."""
    if kind == "stuff":
        return "stuff", source
    return "thing", source if kind == "thing" else "unknown"


def class_kinds(bank, vocab: Vocabulary) -> list[tuple[str, str]]:
    """(kind, kind_source) per class of ``vocab`` in label order, kind "stuff" or "thing" as
    the query uses it: the pinned kind, else (a vocabulary made before kinds were pinned) the
    ``classes`` row at the vocabulary's pinned version, source suffixed " (not pinned)"."""
    if all(c.kind for c in vocab.classes):
        return [(c.kind, c.kind_source) for c in vocab.classes]
    version = vocab.versions.get("classes")
    rows = bank.read("classes", version=version, columns=["class_key", "kind", "kind_source"])
    table = {r["class_key"]: (r["kind"], r["kind_source"]) for r in rows.to_pylist()}
    out = []
    for c in vocab.classes:
        if c.kind:
            out.append((c.kind, c.kind_source))
            continue
        kind, source = _query_kind(*table.get(c.class_key, ("unknown", "none")))
        out.append((kind, f"{source} (not pinned)"))
    return out


def _with_kinds(bank, vocab: Vocabulary) -> Vocabulary:
    """``vocab`` with every class's kind filled (:func:`class_kinds`)."""
    if all(c.kind for c in vocab.classes):
        return vocab
    kinds = class_kinds(bank, vocab)
    pairs = zip(vocab.classes, kinds, strict=True)
    vocab.classes = [replace(c, kind=k, kind_source=s) for c, (k, s) in pairs]
    return vocab


def list_vocabs(bank: Bank) -> list[Vocabulary]:
    vocabs = (_with_kinds(bank, _from_row(r)) for r in bank.read("vocabs").to_pylist())
    return sorted(vocabs, key=lambda v: v.name)


def get_vocab(bank: Bank, name: str) -> Vocabulary:
    rows = bank.read("vocabs", f"name = {sql_str(name)}").to_pylist()
    if not rows:
        known = ", ".join(v.name for v in list_vocabs(bank)) or "none yet"
        raise NotFoundError(
            f"unknown vocabulary {name!r} (known: {known}); "
            f"create it with `protodb vocab create {name} CLASS...`"
        )
    return _with_kinds(bank, _from_row(rows[0]))


def _kind_choices(kinds, classes: list[str]) -> dict[str, tuple[str, str]]:
    """``kinds`` of :func:`create_vocab` by class key -> (kind, source)."""
    out: dict[str, tuple[str, str]] = {}
    keys = {class_key(c) for c in classes}
    for name, value in (kinds or {}).items():
        kind, source = (value, "user") if isinstance(value, str) else tuple(value)
        if kind not in ("stuff", "thing"):
            raise ParameterError("kinds", kind, f"(class {name!r}) is not one of stuff, thing")
        if class_key(name) not in keys:
            raise ParameterError("kinds", name, "names a class that is not in the vocabulary")
        out[class_key(name)] = (kind, str(source))
    return out


def create_vocab(
    bank: Bank,
    name: str,
    classes: list[str],
    *,
    extractors: list[str] | None = None,
    seed: int | None = None,
    generator_id: str | None = None,
    recipes: list[str] | None = None,
    kinds: Mapping[str, str | tuple[str, str]] | None = None,
) -> Vocabulary:
    """Pin a vocabulary of ``classes`` (in label order) under ``name``.

    Each class must have a completed prototype set; when a class has sets from several
    (generator, seed) pairs, ``seed`` / ``generator_id`` choose. ``extractors`` (names such as
    "dinov2" or full extractor ids) default to those every class has.

    recipes: ``--recipe`` values, ``ID`` (for every class that has it) or ``CLASS=ID``. A class
    without a choice uses its only recipe; with several, the one a plain ``add`` makes (otsu
    masks, K = 32, every level; any n) when exactly one is that; else it is a one-line error
    naming the class, its recipes and the flag.

    kinds: class -> "stuff" / "thing" (source "user") or (kind, source), e.g. a dataset's
    (:func:`protodb.evaluation.datasets.dataset_kinds`); a class not named pins the kind of its
    ``classes`` row now (unknown: thing). The query uses the pinned kinds.
    """
    from protodb.bank.recipe import parse_recipe_choices

    everywhere, per_class = parse_recipe_choices(recipes)
    pinned_kinds = _kind_choices(kinds, list(classes))
    if not isinstance(name, str) or not VOCAB_NAME.fullmatch(name):
        raise ProtodbError(
            f"invalid vocabulary name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if not classes:
        raise ProtodbError(
            "a vocabulary needs at least one class: protodb vocab create NAME CLASS..."
        )
    if len(classes) > MAX_CLASSES:
        raise ProtodbError(
            f"a vocabulary holds at most {MAX_CLASSES} classes (labels are 8-bit PNG values, "
            f"0 = background); {len(classes)} given: split them into several vocabularies"
        )
    if bank.read("vocabs", f"name = {sql_str(name)}").num_rows:
        raise ProtodbError(
            f"vocabulary {name!r} exists and vocabularies are immutable; choose another name"
        )
    stray = [k for k in per_class if k not in {class_key(c) for c in classes}]
    if stray:
        raise ProtodbError(
            f"--recipe {stray[0]}={per_class[stray[0]]} names a class that is not in the "
            "vocabulary; list it among the classes or drop that --recipe"
        )
    chosen: list[VocabClass] = []
    ext_sets: list[dict[str, dict]] = []
    seen: set[str] = set()
    rows_of = bank.read("classes", columns=["class_key", "kind", "kind_source"]).to_pylist()
    class_rows = {r["class_key"]: (r["kind"], r["kind_source"]) for r in rows_of}
    for raw in classes:
        display, key = canonical(raw), class_key(raw)
        if key in seen:
            raise ProtodbError(f"class {display!r} is listed twice; list each class once")
        seen.add(key)
        rows = bank.sets(key).to_pylist()
        if not rows:
            raise NotFoundError(
                f"class {display!r} is not in the bank; add it first: protodb add {display!r}"
            )
        if seed is not None:
            rows = [r for r in rows if r["seed"] == seed]
        if generator_id is not None:
            rows = [r for r in rows if r["generator_id"] == generator_id]
        mine = per_class.pop(key, None)
        if mine is not None or everywhere:  # a recipe named: it may also settle the seed
            rows = _pick_recipe(rows, display, everywhere, mine)
        pairs = sorted({(r["generator_id"], r["seed"]) for r in rows})
        if not pairs:
            raise NotFoundError(
                f"class {display!r} has no prototype set with seed={seed} generator={generator_id}"
            )
        if len(pairs) > 1:
            opts = "; ".join(f"--generator {g} --seed {s}" for g, s in pairs)
            raise ProtodbError(f"class {display!r} has several prototype sets; choose one: {opts}")
        gid, s = pairs[0]
        rows = [r for r in rows if (r["generator_id"], r["seed"]) == (gid, s)]
        rows = _pick_recipe(rows, display, [], None)
        kind = pinned_kinds.get(key) or _query_kind(*class_rows.get(key, ("unknown", "none")))
        chosen.append(VocabClass(rows[0]["name"], key, gid, int(s), rows[0]["recipe_id"], *kind))
        ext_sets.append({r["extractor_id"]: r for r in rows})

    common = _without_superseded(sorted(set.intersection(*(set(e) for e in ext_sets))), ext_sets[0])
    if extractors:
        picked = []
        for want in extractors:
            match = [e for e in common if e == want or e.split("-")[0] == want]
            if not match:
                have = sorted(set().union(*(set(e) for e in ext_sets)))
                raise NotFoundError(
                    f"extractor {want!r} is not available for every class (available to all: "
                    f"{', '.join(common) or 'none'}; to some: {', '.join(have)}); "
                    f"add the missing sets with protodb add CLASS --extractor {want}"
                )
            picked += [m for m in match if m not in picked]
        common = picked
    if not common:
        raise ProtodbError("the classes share no extractor; add them with a common --extractor")
    vexts = [
        VocabExtractor(
            e,
            ext_sets[0][e]["prototype_table"],
            ExtractorConfig.from_json(ext_sets[0][e]["extractor_config"]),
        )
        for e in common
    ]
    with bank.writer(), bank.commit_lock():
        if bank.read("vocabs", f"name = {sql_str(name)}").num_rows:
            raise ProtodbError(
                f"vocabulary {name!r} exists and vocabularies are immutable; choose another name"
            )
        with bank.atomic("vocab create"):  # tags, row and history row: all or nothing
            return _pin_vocab(bank, name, chosen, vexts)


def _pin_vocab(bank: Bank, name: str, chosen: list, vexts: list) -> Vocabulary:
    """Record the vocabulary row and tag every table version it pins (``vocab.<name>``), so
    ``gc`` keeps those versions."""
    versions = bank.versions()
    for table, version in versions.items():
        if table not in ("log", "meta"):
            bank.tag(table, vocab_tag(name), version)
    bank_version = len(bank.history()) + 1
    vocab = Vocabulary(name, chosen, vexts, versions, bank_version, now())
    bank.append(
        "vocabs",
        pa.table(
            {
                "name": [name],
                "classes": [json.dumps([c.__dict__ for c in chosen])],
                "extractors": [
                    json.dumps(
                        [
                            {
                                "extractor_id": e.extractor_id,
                                "prototype_table": e.prototype_table,
                                "config": json.loads(e.config.to_json()),
                            }
                            for e in vexts
                        ]
                    )
                ],
                "versions": [json.dumps(versions, sort_keys=True)],
                "bank_version": [bank_version],
                "created_at": [vocab.created_at],
            }
        ),
    )
    bank.log("vocab create", {"name": name, "classes": [c.name for c in chosen]})
    return vocab


def _pick_recipe(
    rows: list[dict], display: str, everywhere: list[str], mine: str | None
) -> list[dict]:
    """The sets rows of the recipe chosen for one class (see :func:`create_vocab`)."""
    from protodb.bank.recipe import plain_recipe_id

    have = sorted({r["recipe_id"] for r in rows})
    if not have:
        return rows
    flag = f"--recipe {display!r}=ID" if " " in display else f"--recipe {display}=ID"
    if mine is not None:
        if mine not in have:
            raise NotFoundError(
                f"class {display!r} has no prototype set of recipe {mine} (its recipes: "
                f"{', '.join(have)}); choose one of those with {flag}"
            )
        pick = mine
    elif everywhere:
        match = [r for r in everywhere if r in have]
        if len(match) != 1:
            what = "none of" if not match else "several of"
            raise ProtodbError(
                f"class {display!r} has {what} the recipes given ({', '.join(everywhere)}); "
                f"its recipes: {', '.join(have)}; choose one with {flag}"
            )
        pick = match[0]
    elif len(have) == 1:
        pick = have[0]
    else:
        plain = [
            r
            for r in have
            if r == plain_recipe_id(next(x["n"] for x in rows if x["recipe_id"] == r))
        ]
        if len(plain) != 1:
            raise ProtodbError(
                f"class {display!r} has prototype sets of several recipes ({', '.join(have)}); "
                f"choose one with {flag} (`protodb show {display!r}` describes them)"
            )
        pick = plain[0]
    return [r for r in rows if r["recipe_id"] == pick]


def _without_superseded(ids: list[str], sets: dict[str, dict]) -> list[str]:
    """Extractor ids minus those whose sets have a known issue (e.g. CLIP built with GELU
    before the QuickGELU fix) when a set of the same extractor without it is also there, so
    one vocabulary never mixes features from before and after a fix."""
    from protodb.extractors.base import known_issue

    configs = {e: ExtractorConfig.from_json(sets[e]["extractor_config"]) for e in ids}
    fixed = {c.name for c in configs.values() if known_issue(c) is None}
    return [e for e in ids if known_issue(configs[e]) is None or configs[e].name not in fixed]
