"""``add`` of many classes and seeds: the request checked, the models resolved and preflighted
once, then one :func:`protodb.synthesis.add.add_class` per (class, seed) unit, here or on an
executor (protodb.scale.add.RayExecutor).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from protodb.errors import NotFoundError
from protodb.extractors.base import ExtractorConfig
from protodb.names import class_key
from protodb.progress import Progress
from protodb.synthesis.generate import GeneratorConfig, default_generator_config
from protodb.synthesis.recipe import make_recipe
from protodb.synthesis.request import AddRequest


def add_classes(
    runtime,
    request: AddRequest,
    *,
    progress: bool | Progress = True,
    on_result: Callable | None = None,
    executor=None,
) -> list:
    """Build the missing prototype sets of ``request`` into ``runtime``'s bank (a
    protodb.runtime.Runtime: its bank, profile and device setting). Models load once and serve
    every class; when this call loaded any, every cached model is released at its end
    (protodb.extractors.factory.release_models). ``on_result``: called with each AddResult as
    it is done. ``executor``: None (this process) or a protodb.scale.add.RayExecutor (units on
    Ray actors, committed here). Returns one protodb.synthesis.add.AddResult per (class,
    seed), classes outer."""
    from protodb.extractors.factory import loaded_extractors
    from protodb.synthesis.add import add_class

    request.validate()
    generator, extractors = request_models(runtime.settings.profile, request)
    jobs = request.jobs()
    check_models(runtime, generator, extractors, jobs, request)
    if executor is not None:
        return executor.add(
            runtime, jobs, generator=generator, extractors=extractors, request=request,
            progress=progress, on_result=on_result,
        )  # fmt: skip
    results = []
    prog = Progress.of(progress)
    # models load once and serve every class; what this call loaded is freed at its end
    loaded = loaded_extractors()
    with (
        released_after(loaded),
        prog.bar("classes", len(jobs), "set", show=len(jobs) > 1) as bar,
    ):
        for name, seed in jobs:
            bar.set_postfix_str(name)
            res = add_class(
                runtime.bank,
                name,
                generator=generator,
                extractors=extractors,
                seed=seed,
                n=request.n,
                device=runtime.settings.device,
                batch_size=request.batch_size,
                progress=prog,
                kind=request.kind,
                mask_source=request.mask_source,
                parts=request.parts,
            )
            results.append(res)
            bar.update(1)
            if on_result is not None:
                with prog.interrupt():
                    on_result(res)
    return results


def request_models(
    profile: str, request: AddRequest
) -> tuple[GeneratorConfig, list[ExtractorConfig]]:
    """The generator config and the extractor configs of ``request`` on ``profile``: the
    profile's defaults with the request's overrides (``model`` is the Stable Diffusion the sd
    extractor reads too: it shares the UNet)."""
    from protodb.extractors.factory import default_extractor_config
    from protodb.synthesis.add import default_extractors

    r = request
    gen = default_generator_config(
        profile, steps=r.steps, guidance=r.guidance, template=r.template, model=r.model
    )
    names = r.extractors if r.extractors is not None else default_extractors(profile)
    exts = [
        default_extractor_config(profile, name, model=r.model if name == "sd" else None)
        for name in names
    ]
    return gen, exts


def check_models(
    runtime,
    gen: GeneratorConfig,
    exts: Sequence[ExtractorConfig],
    jobs: Sequence[tuple[str, int]],
    request: AddRequest,
) -> None:
    """Before any image is generated: every model the sets still to build need can be
    loaded (protodb.models.preflight), so a missing one fails in seconds, not after
    minutes of sampling. Nothing is checked when every set is already in the bank."""
    from protodb.models.defaults import DINO_DEFAULT, SAM_DEFAULT
    from protodb.models.preflight import ModelNeed, extractor_need, generator_need, preflight

    recipe_id = make_recipe(request.mask_source, request.n, request.parts).id
    mask_source = request.mask_source
    try:
        bank = runtime.open_existing()  # a bank that does not exist yet is not made for this
    except NotFoundError:
        todo = list(exts)
    else:
        # one read of the sets table, not one lookup per (class, seed, extractor)
        columns = ["class_key", "generator_id", "seed", "extractor_id", "recipe_id"]
        have = {tuple(r[c] for c in columns) for r in bank.sets().select(columns).to_pylist()}
        todo = [
            ext
            for ext in exts
            if any(
                (class_key(name), gen.id, s_, ext.id, recipe_id) not in have for name, s_ in jobs
            )
        ]
    if not todo:
        return
    needs = [generator_need(gen), *(extractor_need(ext) for ext in todo)]
    # the segmenters take their tiny twins below 128 px (protodb.segmenters)
    segmenter = {"maskcut": ("DINO (maskcut)", DINO_DEFAULT), "sam": ("SAM", SAM_DEFAULT)}
    if mask_source in segmenter and gen.size >= 128:
        needs.append(ModelNeed(*segmenter[mask_source]))
    preflight(needs)


@contextlib.contextmanager
def released_after(before: set):
    """On exit, release every cached model (protodb.extractors.factory.release_models) when
    an extractor was built inside: an ``add`` call frees the models it loaded."""
    from protodb.extractors.factory import loaded_extractors, release_models

    try:
        yield
    finally:
        if loaded_extractors() - before:
            release_models()
