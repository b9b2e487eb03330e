"""Progress of long work, as the place it is shown expects.

* On a terminal: a tqdm bar (its own ETA) on stderr.
* When stderr is not a terminal (a Slurm or nohup log, a pipe): one plain line per step on stderr,
  e.g. ``analyze: 3/12 pieces (run-a lmc 2)``, at most ``lines`` lines in all for fine-grained work
  (grid points), so a log shows that the job lives without drowning in carriage returns.
* Under ``quiet``, or when the ``CI`` environment variable is set: nothing.

Very long requests get a one-line estimate measured on the first step, e.g.
``interpolate: 100000 α will take about 2 h 13 min (0.08 s each, measured on the first)``, printed
once when the whole would take longer than ``estimate_after`` seconds (a minute by default). It is
information, never a refusal.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm.auto import tqdm


def progress_mode(quiet: bool, stream: TextIO | None = None) -> str:
    """``"off"`` (quiet, or CI), ``"bar"`` (stderr is a terminal) or ``"lines"`` (a log file or pipe)."""
    if quiet or os.environ.get("CI"):
        return "off"
    stream = stream or sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 13 min``, ``3 d 4 h``."""
    s = round(seconds)
    if s < 60:
        return f"{max(seconds, 0):.2g} s" if seconds < 1 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


class Progress:
    """Progress over ``total`` steps of ``unit`` (see the module docstring); use as a context manager
    or call :meth:`close`. ``initial`` steps are already done (a resumed run)."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        *,
        quiet: bool = False,
        initial: int = 0,
        lines: int | None = None,
        estimate_after: float = 60.0,
        clock: Callable[[], float] = time.perf_counter,
        stream: TextIO | None = None,
    ):
        self.total, self.desc, self.unit, self.done = int(total), desc, unit, int(initial)
        self.stream = stream or sys.stderr
        self.mode = progress_mode(quiet, self.stream)
        self.every = max(1, math.ceil(self.total / lines)) if lines else 1
        self.estimate_after, self.clock = estimate_after, clock
        self._start, self._estimated, self._last_line = clock(), False, self.done
        self.bar = None
        if self.mode == "bar":
            self.bar = tqdm(total=self.total, initial=self.done, desc=desc, unit=unit, leave=False, file=self.stream)

    def write(self, line: str) -> None:
        """A line on stderr that does not break the bar (nothing when progress is off)."""
        if self.mode == "bar":
            tqdm.write(line, file=self.stream)
        elif self.mode == "lines":
            print(line, file=self.stream, flush=True)

    def update(self, n: int = 1, note: str = "") -> None:
        """``n`` more steps done; ``note`` says what the last one was (shown in the bar or the line)."""
        first = not self._estimated
        self.done += n
        if first:
            self._estimated = True
            self._estimate(n)
        if self.bar is not None:
            self.bar.update(n)
            if note:
                self.bar.set_postfix_str(note, refresh=False)
        elif self.mode == "lines" and (self.done - self._last_line >= self.every or self.done >= self.total):
            self._last_line = self.done
            self.write(f"{self.desc}: {self.done}/{self.total} {self.unit}" + (f" ({note})" if note else ""))

    def _estimate(self, n: int) -> None:
        per = (self.clock() - self._start) / max(n, 1)
        remaining = self.total - self.done
        if remaining > 0 and per * (remaining + n) > self.estimate_after:
            self.write(
                f"{self.desc}: {self.total} {self.unit} will take about {duration(per * (remaining + n))} "
                f"({duration(per)} each, measured on the first)"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
