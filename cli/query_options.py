"""The query options that `segment`, `explain` and `eval` share, and their one mapping onto
protodb.QueryConfig (the profile's defaults, a line on stderr when the pre-filter default
decides): an evaluation runs exactly the configuration a segmentation does."""

from __future__ import annotations

from typing import Annotated

import typer

from protodb.cli.common import err

PrefilterOpt = Annotated[
    bool | None,
    typer.Option(
        "--prefilter/--no-prefilter",
        help="CLIP category pre-filter (REFERENCE 1.7). Default: on for the default profile "
        "(as in the paper), off for --profile tiny (its CLIP has random weights) and the test "
        "world (no text encoder).",
    ),
]
WindowsOpt = Annotated[
    bool,
    typer.Option(
        "--windows/--no-windows",
        help="Sliding windows 448 and 336 (stride 224) plus the whole image, else the whole "
        "image only.",
    ),
]
EtaOpt = Annotated[
    int | None,
    typer.Option(
        "--eta", help="Pre-filter: at most this many candidate classes (default 10, the paper's)."
    ),
]
PamrOpt = Annotated[bool, typer.Option("--pamr/--no-pamr", help="Refine the scores with PAMR.")]
StuffOpt = Annotated[
    bool,
    typer.Option(
        "--stuff-filter/--no-stuff-filter",
        help="Stuff classes give no bg prototypes; thing bg prototypes close (cosine > 0.85) to "
        "a stuff fg prototype are dropped.",
    ),
]


def query_config(db, *, windows, prefilter, eta, pamr, stuff_filter, **fields):
    """The QueryConfig of these flags over the profile's defaults (``fields``: further
    QueryConfig fields; None leaves a default); says on stderr when the profile's default
    decides the pre-filter."""
    config = db.default_query_config(
        windows=windows, prefilter=prefilter, eta=eta, pamr=pamr, stuff_filter=stuff_filter,
        **fields,
    )  # fmt: skip
    if prefilter is None:
        from protodb.profiles import get_profile

        why = get_profile(db.settings.profile).prefilter_reason
        err(f"pre-filter {'on' if config.prefilter else 'off'} ({why}; --prefilter to change)")
    return config
