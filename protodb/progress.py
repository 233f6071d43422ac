"""Progress a person can trust on long work: one bar per level, stacked, on stderr.

A :class:`Progress` hands out nested bars: the outermost (classes of an ``add``, images of a
``segment``) on the first line, the stage of the current item below it (generate, masks,
features, prototypes, bank write; or an image's extractors and windows), and the work inside a
stage below that (denoising steps, feature batches). Every bar is tqdm's, drawn on stderr and
removed when its work is done. ``Progress(False)`` (``--quiet``, ``--json``) draws nothing; the
libraries' own bars and log lines are silenced by the model loaders.

    progress = Progress()
    with progress.bar("classes", total=3, unit="class") as classes:
        with progress.bar("red apple: generate", total=40, unit="step") as steps:
            steps.update(1)
        classes.update(1)
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any


class NoBar:
    """What a disabled Progress hands out: every call does nothing."""

    def update(self, n: float = 1) -> None:
        pass

    def set_description_str(self, desc: str) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def reset(self, total: float | None = None) -> None:
        pass


class _Fractional:
    """A bar whose count moves in fractions, kept within its total (float sums of step
    fractions can pass it by a rounding error)."""

    def __init__(self, bar) -> None:
        self._bar = bar

    def update(self, n: float = 1) -> None:
        if self._bar.total is not None:
            n = min(n, self._bar.total - self._bar.n)
        if n > 0:
            self._bar.update(n)

    def __getattr__(self, name: str):
        return getattr(self._bar, name)


class Progress:
    """Nested progress bars (see the module docstring). ``enabled=False``: silent."""

    def __init__(
        self, enabled: bool = True, *, file: Any = None, tick_s: float | None = None
    ) -> None:
        """``tick_s``: seconds between redraws of the open bars (default: 1 on a terminal, none
        elsewhere, where every redraw would be a new line of a log)."""
        self.enabled = enabled
        self.file = file
        if tick_s is None:
            out = file if file is not None else sys.stderr
            tick_s = 1.0 if getattr(out, "isatty", lambda: False)() else 0.0
        self.tick_s = tick_s
        self._depth = 0
        self._open: list[Any] = []
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def _tick(self) -> None:
        """Redraw the open bars every ``tick_s`` seconds, so elapsed time keeps moving through
        a long step that reports nothing (K-means, one denoiser call on a CPU)."""
        while not self._stop.wait(self.tick_s):
            for bar in list(self._open):
                bar.refresh()

    @classmethod
    def of(cls, progress: bool | Progress | None) -> Progress:
        """``progress`` as a Progress: a bool switches a new one on or off; None is off."""
        if isinstance(progress, Progress):
            return progress
        return cls(bool(progress))

    @contextlib.contextmanager
    def bar(
        self,
        desc: str,
        total: float | None = None,
        unit: str = "it",
        *,
        fractional: bool = False,
        show: bool = True,
    ) -> Iterator[Any]:
        """A bar one level below the innermost open one, closed (and erased) on exit.
        ``fractional``: the count moves in fractions (e.g. images' worth of denoising steps)
        and is shown with one decimal. ``show=False``: no bar (and no level) for this one."""
        if not (self.enabled and show):
            yield NoBar()
            return
        from tqdm.auto import tqdm

        fmt = None
        if fractional:
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.0f} {unit} "
            fmt += "[{elapsed}<{remaining}]"
        bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            position=self._depth,
            leave=False,
            file=self.file if self.file is not None else sys.stderr,
            dynamic_ncols=True,
            mininterval=0.2,
            bar_format=fmt,
        )
        self._depth += 1
        self._open.append(bar)
        if self._ticker is None and self.tick_s > 0:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="protodb-progress", daemon=True)
            self._ticker.start()
        try:
            yield _Fractional(bar) if fractional else bar
        finally:
            self._depth -= 1
            self._open.remove(bar)
            if not self._open and self._ticker is not None:
                self._stop.set()
                self._ticker.join()
                self._ticker = None
            bar.close()

    @contextlib.contextmanager
    def interrupt(self) -> Iterator[None]:
        """Print a line in the block (to stdout or stderr) without tearing the bars: they are
        cleared first and drawn again after."""
        if not self.enabled or self._depth == 0:
            yield
            return
        from tqdm.auto import tqdm

        with tqdm.external_write_mode(file=sys.stdout):
            yield


OFF = Progress(False)
