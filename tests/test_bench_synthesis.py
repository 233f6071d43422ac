"""bench/bench_synthesis.py: the stage breakdown of a real ``add`` of one class (real scripts,
real models: the tiny twins by default, the random-weight real architectures when slow)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
STAGES = (
    "sampling", "vae decode", "text encoder", "capture", "supports write", "masks",
    "features sd", "features dino", "features clip", "prototypes sd", "prototypes dino",
    "prototypes clip", "bank write sd", "bank write dino", "bank write clip", "other",
)  # fmt: skip


def _bench():
    sys.path.insert(0, str(BENCH.parent))
    try:
        return importlib.import_module("bench.bench_synthesis")
    finally:
        sys.path.remove(str(BENCH.parent))


def _check(out: dict, n: int, steps: int, size: int) -> None:
    assert (out["n"], out["steps"], out["size"]) == (n, steps, size)
    assert not out["full_size"] and "the full size is N = 32, 30 steps, 512 px" in out["size_note"]
    stages = out["stages"]
    for stage in STAGES:
        assert stages[stage] >= 0, stage
    for stage in ("sampling", "vae decode", "features sd", "features dino", "features clip"):
        assert stages[stage] > 0, stage
    total = out["seconds_per_class"]
    # the stages are exclusive and "other" closes the sum; the named stages hold nearly all
    assert sum(stages.values()) == pytest.approx(total, rel=1e-6)
    assert stages["other"] < 0.25 * total
    assert out["resampling_without_capture_s"] > 0 and out["resampling_with_capture_s"] > 0
    assert out["capture_overhead_s"] == pytest.approx(
        out["resampling_with_capture_s"] - out["resampling_without_capture_s"]
    )
    assert out["images_identical_without_capture"] is True
    assert out["peak_memory_bytes"] >= out["memory_before_bytes"] > 0
    assert out["memory_kind"] == "peak RSS" and out["device"] == "cpu"
    assert out["resampling_clock"] == "cpu"
    assert out["denoiser_calls"] == 1 and out["padded_images"] == 0
    assert set(out["prototypes"]) and all(c["fg"] >= 1 for c in out["prototypes"].values())


def test_quick_run_prints_the_breakdown_as_json(capsys):
    """--quick: the tiny twins (N = 2, 1 step, 64 px), every stage timed, the JSON complete."""
    bench = _bench()
    assert bench.main(["--quick", "--json", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    _check(out, 2, 1, 64)
    assert out["models"] == "tiny twins" and out["build_s"] >= 0
    assert "QUICK" in out["size_note"] and "bench_synthesis: tiny twins on cpu" in captured.err


def test_table_and_figures(capsys):
    bench = _bench()
    out = {
        "device": "cpu", "models": "m", "n": 2, "steps": 2, "size": 256, "full_size": False,
        "size_note": "REDUCED", "seconds_per_class": 10.0, "unet_batch": 2, "denoiser_calls": 1,
        "padded_images": 0, "build_s": 0.0, "load_s": 1.0, "warmup_s": 0.0,
        "stages": {"sampling": 6.0, "masks": 1.0, "features sd": 2.0, "other": 1.0},
        "repeats": 2, "resampled_images": 2, "resampling_clock": "cpu",
        "resampling_without_capture_s": 5.0,
        "resampling_with_capture_s": 5.25,
        "capture_overhead_s": 0.25, "capture_overhead": 0.05,
        "images_identical_without_capture": True, "peak_memory_bytes": 3 << 20,
        "memory_before_bytes": 2 << 20, "memory_kind": "peak RSS",
    }  # fmt: skip
    bench.report(out)
    text = capsys.readouterr().out
    assert "sampling (denoising, with capture)      6.00   60.0%" in text
    assert "total (seconds per class)              10.00  100.0%" in text
    assert "capture overhead +0.25 s (+5.0%; target <= 10 %)" in text
    assert (
        "2 images sampled again (best of 2, cpu seconds): without capture 5.00 s, with 5.25 s"
        in text
    )
    lines = [x for x in text.splitlines() if x.count("\t") == 3]
    assert (
        lines[0] == "synthesis_s_per_class\t10.00\ts\tbaseline: - (REDUCED: N=2, 2 steps, 256 px)"
    )
    assert "synthesis_capture_overhead\t5.0\t%" in text and "synthesis_peak_memory\t3\tMiB" in text


def test_size_defaults_by_device():
    bench = _bench()
    args = bench.parse([])
    assert bench.resolve_size(args, "cuda")[0] == {"n": 32, "steps": 30, "size": 512}
    size, note = bench.resolve_size(args, "cpu")
    assert size == {"n": 2, "steps": 2, "size": 256} and note.startswith("REDUCED")
    size, note = bench.resolve_size(bench.parse(["--n", "4"]), "cpu")
    assert size == {"n": 4, "steps": 30, "size": 512} and "REDUCED" in note
    assert bench.resolve_size(bench.parse(["--n", "32"]), "cpu")[1].startswith("the paper's")
    with pytest.raises(SystemExit):
        bench.parse(["--extractors", "sd,mae"])
    with pytest.raises(SystemExit):
        bench.parse(["--tiny", "--random-weights"])


@pytest.mark.slow
def test_random_weights_at_64px():
    """The real architectures with random weights (built once under the bench's work
    directory: about 5 GB, minutes the first time) at 64 px, N = 2, 1 step, on the CPU."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_synthesis", "--random-weights", "--device", "cpu",
         "--size", "64", "--n", "2", "--steps", "1", "--json"],
        capture_output=True, text=True, timeout=1200, cwd=BENCH.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    _check(result, 2, 1, 64)
    assert result["models"] == "real architectures, random weights"
    # the sd extractor's features are SD 1.5's 7680 query dims: the real architecture ran
    assert result["prototypes"]["sd"]["fg"] >= 1
