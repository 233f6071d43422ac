"""A bank writer without models, for concurrency and crash tests (in-process or as a script).

    python tests/bank_writer.py URI FIRST COUNT [--sleep S]

writes the synthetic prototype sets of classes ``class FIRST`` .. ``class FIRST+COUNT-1`` the
way ``protodb add`` does, with the bank's row encodings (:mod:`protodb.bank.rows`): keyed
support rows, then prototype rows, cell rows and the completion record through
``Bank.write_set``, then a log row. Vectors are a deterministic function of the
class, so every writer of a key writes the same set.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from protodb.bank.rows import cells_table, prototypes_table, set_record, supports_table
from protodb.bank.schema import SetKey
from protodb.bank.store import Bank, open_bank
from protodb.synthesis.add import SUPPORT_KEY
from protodb.synthesis.generate import SupportImage
from protodb.synthesis.recipe import make_recipe

EXTRACTOR = "ext-1"
GENERATOR = "gen-1"
DIM = 8


def n_rows(i: int) -> int:
    """Prototype rows of synthetic class i (fg + bg)."""
    return 4 + i % 3


def vectors(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal((n_rows(i), DIM)).astype(np.float32)


def write_class(bank: Bank, i: int, n_support: int = 2) -> bool:
    """Write synthetic class i; False when its set already existed."""
    key = f"class {i}"
    with bank.writer():
        bank.upsert_class(key, key)
        image = np.full((4, 4, 3), i % 256, np.uint8)  # a real 4x4 PNG
        supports = [SupportImage(j, image, np.zeros((2, 2), np.float32)) for j in range(n_support)]
        rows = supports_table(key, GENERATOR, 0, supports, generator_config="{}", runtime="{}")
        bank.insert_new("supports", rows, SUPPORT_KEY)
        m = n_rows(i)
        bank.ensure_prototype_table(EXTRACTOR, DIM, "float16")
        fg = m // 2
        recipe = make_recipe("otsu", n_support)
        set_key = SetKey(key, GENERATOR, 0, EXTRACTOR, recipe.id)
        protos = prototypes_table(
            set_key,
            polarity=["fg"] * fg + ["bg"] * (m - fg),
            level=["class", *["instance"] * (fg - 1), "class", *["instance"] * (m - fg - 1)],
            part=[-1] * m,
            support=[-1] + list(range(fg - 1)) + [-1] + list(range(m - fg - 1)),
            weight=[1.0] * m,
            vectors=vectors(i),
            store_dtype="float16",
        )
        cells = cells_table(
            set_key, polarity="fg", supports=[0], grids=np.zeros((1, 2, 2), np.int16)
        )
        record = set_record(
            set_key,
            name=key,
            n_supports=n_support,
            n=n_support,
            n_used=n_support,
            n_fg=fg,
            n_bg=m - fg,
            dim=DIM,
            mask_source="otsu",
            thresholds=[0.3, 0.6],
            generator_config="{}",
            extractor_config=json.dumps({"name": "ext", "model": "test-writer"}),
            recipe=recipe,
        )
        written = bank.write_set(set_key, protos, cells, record)
        if written:
            bank.log("add", {"class": key})
    return written


def main() -> None:
    uri, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sleep = float(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--sleep" else 0.0
    bank = open_bank(uri)
    print("ready", flush=True)
    for i in range(first, first + count):
        write_class(bank, i)
        time.sleep(sleep)
    print("done", flush=True)


if __name__ == "__main__":
    main()
