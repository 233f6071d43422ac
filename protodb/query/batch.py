"""Segment many image files against one vocabulary, streamed, resumable, with a progress bar.

Every input is checked before anything is written; images are decoded and segmented one at a
time, so memory stays bounded however many there are. An image's summary ``<stem>.json`` is
written last (protodb.query.outputs), so ``skip_existing`` resumes an interrupted run where it
stopped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from protodb.errors import ProtodbError
from protodb.images import check_image, load_rgb
from protodb.progress import Progress
from protodb.query.outputs import summary_path, write_outputs


def segment_paths(handle, paths: Sequence[str | os.PathLike], out, **options) -> list[dict]:
    """:func:`segment_files` of ``paths``: files, directories (their images, sorted) and glob
    patterns (protodb.images.expand_paths), local only (``s3://`` needs protodb.scale.segment);
    ``options``: those of segment_files."""
    from protodb.images import expand_paths

    for p in [*paths, out]:
        if str(p).startswith("s3://"):
            raise ProtodbError(
                f"{str(p)!r}: s3:// inputs and outputs need Ray (--ray, or ray= here)"
            )
    return segment_files(handle, expand_paths(paths), out, **options)


def segment_files(
    handle,
    files: Sequence[Path],
    out: str | os.PathLike,
    *,
    vocab: str,
    progress: bool | Progress = True,
    on_image: Callable[[dict], None] | None = None,
    skip_existing: bool = False,
    save_scores: bool = False,
) -> list[dict]:
    """Segment ``files`` with ``handle`` (a protodb.query.handle.VocabHandle of ``vocab``)
    and write their outputs to ``out``. Returns one summary per image (see
    protodb.query.outputs.write_outputs, plus "image", "vocab" and "skipped"); ``on_image`` is
    called with each as it is done."""
    for p in files:  # check every input before writing anything; decode one at a time
        check_image(p)
    stems = [p.stem for p in files]
    dupes = sorted(s for s, k in Counter(stems).items() if k > 1)
    if dupes:
        raise ProtodbError(
            f"several inputs share the name {dupes[0]!r}; their outputs would collide"
        )
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ProtodbError(f"--out {str(out_dir)!r} is a file; give a folder for the outputs")
    summaries = []
    prog = Progress.of(progress)
    with prog.bar("segment", len(files), "img") as bar:
        for path in files:
            bar.set_postfix_str(path.name)
            summaries.append(_one(handle, path, out_dir, vocab, prog, skip_existing, save_scores))
            bar.update(1)
            if on_image is not None:
                with prog.interrupt():
                    on_image(summaries[-1])
    return summaries


def _one(handle, path: Path, out_dir: Path, vocab: str, prog, skip_existing, save_scores) -> dict:
    """Segment one file and write its outputs (or read its summary when it is done)."""
    done = summary_path(out_dir, path.stem)
    if skip_existing and done.exists():
        return {**json.loads(done.read_text()), "skipped": True}
    array = load_rgb(path)
    result = handle.segment(array, progress=prog)
    extra = {"image": str(path), "vocab": vocab}
    summary = write_outputs(result, array, out_dir, path.stem, save_scores=save_scores, extra=extra)
    summary["skipped"] = False
    return summary
