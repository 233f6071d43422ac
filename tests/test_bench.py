"""bench/run_all.py: discovery, --quick pass-through, figure lines, failures (real scripts)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module
    spec.loader.exec_module(module)
    return module


QUICK = """import argparse
p = argparse.ArgumentParser()
p.add_argument("--quick", action="store_true")
a = p.parse_args()
print("warming up")
print(f"speed\\t{1.5 if a.quick else 3.0}\\tms\\tbaseline: -")
"""
PLAIN = """import sys
print("size\\t42.000\\tMB\\tbaseline: before (1.0x)")
print("not\\ta\\tfigure")
sys.exit(int(len(sys.argv) > 1))  # fails if given an option it does not declare
"""
BROKEN = "raise SystemExit(3)\n"


def test_run_all_discovers_and_passes_quick_only_where_accepted(tmp_path, capsys):
    run_all = _run_all()
    d = tmp_path / "bench"
    d.mkdir()
    (d / "bench_a.py").write_text(QUICK)
    (d / "bench_b.py").write_text(PLAIN)
    (d / "helper.py").write_text("raise SystemExit(9)\n")  # not a bench_*.py: never run
    assert [p.name for p in run_all.discover(d)] == ["bench_a.py", "bench_b.py"]
    assert run_all.accepts_quick(d / "bench_a.py") and not run_all.accepts_quick(d / "bench_b.py")
    assert run_all.main(["--dir", str(d), "--quick"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "speed\t1.5\tms\tbaseline: -",
        "size\t42.000\tMB\tbaseline: before (1.0x)",
    ]
    assert "warming up" in out.err and "not\ta\tfigure" in out.err
    assert run_all.is_figure("x\t1\ts\tbaseline: -") and not run_all.is_figure("x\tfast\ts\tb")


def test_run_all_reports_a_failing_bench(tmp_path, capsys):
    run_all = _run_all()
    d = tmp_path / "bench"
    d.mkdir()
    (d / "bench_ok.py").write_text(QUICK)
    (d / "bench_zz.py").write_text(BROKEN)
    assert run_all.main(["--dir", str(d)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == ["speed\t3.0\tms\tbaseline: -"]
    assert "failed: bench_zz.py" in out.err
    assert run_all.main(["--dir", str(d), "--only", "nothing"]) == 1


def test_startup_bench_runs_the_named_trees_cli(tmp_path, monkeypatch):
    """bench_startup.py's runs import the CLI of the tree they name, not the installed one: a
    copy of this tree whose --help says something else is the one that answers."""
    import shutil

    monkeypatch.syspath_prepend(str(BENCH.parent))
    from bench import bench_startup as bench

    tree = tmp_path / "tree"
    for part in ("protodb", "cli", "schemas"):
        shutil.copytree(bench.ROOT / part, tree / part, symlinks=True)
    app = tree / "cli" / "app.py"
    app.write_text(app.read_text().replace("A prototype database", "A COPIED prototype database"))
    wall, cpu, status = bench.timed(bench.protodb_cmd(tree, "--help"), tmp_path / "out")
    assert status == 0 and wall > 0 and cpu > 0
    assert "A COPIED prototype database" in (tmp_path / "out").read_text()
    names = [name for name, _ in bench.commands(tmp_path / "bank", quick=True)]
    assert names == ["python -c pass", "--help", "ls", "history"]


@pytest.mark.slow
def test_memory_bench_quick_prints_every_figure():
    """bench_memory.py --quick (tiny twins, 64 px, N = 2 and 4): every configuration runs in
    its own process and prints its figures (about 2-5 min on 2 busy cores)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_memory", "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=BENCH.parent,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run_all = _run_all()
    figures = [line.split("\t")[0] for line in out.stdout.splitlines() if run_all.is_figure(line)]
    for n in (2, 4):
        for what in ("before_peak_extra", "after_peak_extra", "before_s", "after_s"):
            assert f"protos_n{n}_{what}" in figures
    assert "protos_after_extra_growth" in figures
    assert "segment_640x427_after_peak_extra" in figures
    assert "64 px (REDUCED size" in out.stdout


def test_memory_bench_reports_a_configuration_that_dies(monkeypatch, capsys):
    """measure() returns None and says so when its child process dies before answering (the
    kernel's out-of-memory kill in a real run; here a job the child cannot read), instead of
    waiting on the queue for ever."""
    monkeypatch.syspath_prepend(str(BENCH.parent))
    from bench import bench_memory

    assert bench_memory.measure({"kind": "protos", "variant": "before", "n": 32}) is None
    assert "configuration protos before N=32 died (exit 1;" in capsys.readouterr().out
    assert 0 < bench_memory.available_gb() < 1 << 20
