"""Where the time of a long piece of work goes: exclusive seconds per named stage.

A :class:`StageTimer` holds a stack of open stages; the time between two events is charged to
the innermost open stage only, so the figures are exclusive ("self") times that never count a
second twice and add up to the wall time the stages cover. On a CUDA device the timer
synchronises the device at every stage boundary, so a stage's seconds are its kernels', not
the launches'.

The library's long paths (``add``: generation, masks, features, prototypes, bank write) mark
their stages with the module-level :func:`stage` / :func:`switch`, which do nothing unless a
timer is active in the calling context (:func:`active`)::

    timer = StageTimer("cuda")
    with active(timer):
        with stage("sampling"):
            ...
            switch("vae decode")  # the rest of this stage is charged to "vae decode"
            ...
    timer.seconds  # {"sampling": 12.1, "vae decode": 1.4}
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator


class StageTimer:
    """Exclusive seconds per stage (``seconds``: name -> float), see the module docstring.

    device: where the timed work runs; on "cuda..." every boundary synchronises the device
    (only once torch has initialised CUDA: a timer never initialises it). clock: seconds now
    (default time.perf_counter, wall time; time.process_time counts this process's CPU
    seconds, steadier than wall time on a shared machine)."""

    def __init__(self, device: str = "cpu", clock: Callable[[], float] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = clock or time.perf_counter
        self._sync = str(device).startswith("cuda")
        self._stack: list[str] = []
        self._since = 0.0

    def _now(self) -> float:
        if self._sync:
            import torch

            if torch.cuda.is_initialized():
                torch.cuda.synchronize()
        return self._clock()

    def _charge(self, now: float) -> None:
        if self._stack:
            name = self._stack[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + (now - self._since)
        self._since = now

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Charge the block's time (less its nested stages') to ``name``."""
        self._charge(self._now())
        self._stack.append(name)
        depth = len(self._stack)
        try:
            yield
        finally:
            self._charge(self._now())
            del self._stack[depth - 1 :]

    def switch(self, name: str) -> None:
        """From now on, charge the innermost open stage's time to ``name`` instead."""
        if not self._stack:
            raise RuntimeError("switch() outside any stage")
        self._charge(self._now())
        self._stack[-1] = name

    def total(self) -> float:
        """The seconds of every stage together."""
        return sum(self.seconds.values())


_ACTIVE: contextvars.ContextVar[StageTimer | None] = contextvars.ContextVar(
    "protodb_stage_timer", default=None
)


@contextlib.contextmanager
def active(timer: StageTimer) -> Iterator[StageTimer]:
    """Make ``timer`` the one :func:`stage` and :func:`switch` charge within the block."""
    token = _ACTIVE.set(timer)
    try:
        yield timer
    finally:
        _ACTIVE.reset(token)


def current() -> StageTimer | None:
    """The active timer, or None."""
    return _ACTIVE.get()


def stage(name: str) -> contextlib.AbstractContextManager:
    """The active timer's :meth:`StageTimer.stage`, or a no-op when none is active."""
    timer = _ACTIVE.get()
    return timer.stage(name) if timer is not None else contextlib.nullcontext()


def switch(name: str) -> None:
    """The active timer's :meth:`StageTimer.switch`, or nothing when none is active."""
    timer = _ACTIVE.get()
    if timer is not None:
        timer.switch(name)
