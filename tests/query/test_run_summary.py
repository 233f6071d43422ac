"""The summary at the end of a segment run (protodb.query.run_summary), on small dicts."""

from __future__ import annotations

from protodb.query.run_summary import summarize_run

CLASSES = ["background", "a", "b"]


def _s(h, w, areas, skipped=False):
    return {"height": h, "width": w, "classes": CLASSES, "areas": areas, "skipped": skipped}


def test_shares_are_pixel_weighted_and_skipped_images_cost_no_time():
    summaries = [
        _s(10, 10, {"background": 0.5, "a": 0.5}),  # 100 px
        _s(10, 30, {"background": 1.0}, skipped=True),  # 300 px, done before
    ]
    run = summarize_run(summaries, 2.0)
    assert (run.images, run.segmented, run.skipped, run.pixels) == (2, 1, 1, 400)
    assert run.seconds_per_image == 2.0  # over the one image segmented now
    assert run.shares == {"background": 0.875, "a": 0.125, "b": 0.0}  # b absent: 0, listed
    assert run.to_dict()["shares"] == run.shares
    lines = run.table().splitlines()
    assert lines[0] == "2 images (1 segmented, 1 done before), 2.00 s/image, 2.0 s in all"
    assert lines[1].split() == ["class", "pixels"]
    assert lines[2:] == ["background   87.5%", "a            12.5%", "b             0.0%"]


def test_a_run_with_nothing_segmented():
    run = summarize_run([_s(4, 4, {"a": 1.0}, skipped=True)], 0.01)
    assert run.seconds_per_image is None and "s/image" not in run.table()
    empty = summarize_run([], 0.0)
    assert (empty.images, empty.pixels, empty.shares) == (0, 0, {})
