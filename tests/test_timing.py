"""protodb.timing: exclusive stage seconds, switch, the module-level no-ops without a timer."""

import time

import pytest

from protodb import timing
from protodb.timing import StageTimer


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_nested_stages_are_exclusive_and_add_up_to_the_wall_time():
    timer = StageTimer()
    t = time.perf_counter()
    with timer.stage("outer"):
        _busy(0.02)
        with timer.stage("inner"):
            _busy(0.3)
        _busy(0.02)
    wall = time.perf_counter() - t
    assert set(timer.seconds) == {"outer", "inner"}
    assert timer.seconds["inner"] >= 0.3
    # the inner 0.3 s is not counted twice (the margin allows for a loaded machine)
    assert 0.04 <= timer.seconds["outer"] < 0.25
    assert timer.total() == pytest.approx(wall, abs=0.01)


def test_switch_charges_the_rest_of_a_stage_to_another_name_and_repeats_accumulate():
    timer = StageTimer()
    for _ in range(2):
        with timer.stage("sampling"):
            _busy(0.2)
            timer.switch("decode")
            _busy(0.01)
    assert timer.seconds["sampling"] >= 0.4
    assert 0.02 <= timer.seconds["decode"] < 0.3
    with pytest.raises(RuntimeError, match="outside any stage"):
        timer.switch("x")


def test_module_level_stage_and_switch_charge_the_active_timer_only():
    with timing.stage("nothing"):  # no active timer: a no-op
        timing.switch("still nothing")
    assert timing.current() is None
    timer = StageTimer("cpu")
    with timing.active(timer):
        assert timing.current() is timer
        with timing.stage("a"):
            timing.switch("b")
    assert timing.current() is None
    assert set(timer.seconds) == {"a", "b"}
    with timing.stage("after"):
        pass
    assert "after" not in timer.seconds


def test_a_given_clock_is_read_at_every_boundary():
    ticks = iter([0.0, 1.0, 3.0, 6.0, 10.0, 15.0])
    timer = StageTimer(clock=lambda: next(ticks))
    with timer.stage("a"):  # read at 0
        with timer.stage("b"):  # at 1
            timer.switch("c")  # at 3: b 2 s
        # at 6: c 3 s
        pass
    # at 10: a 1 + 4 s
    assert timer.seconds == {"a": 5.0, "b": 2.0, "c": 3.0}


def test_an_exception_closes_the_stage():
    timer = StageTimer()
    with pytest.raises(ValueError), timer.stage("failing"):
        raise ValueError("boom")
    with timer.stage("next"):
        pass
    assert set(timer.seconds) == {"failing", "next"}
