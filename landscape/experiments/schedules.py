"""Notebook 00: the learning-rate schedules the experiments use, side by side (no training)."""

from __future__ import annotations

from training.config import ScheduleConfig


def schedule_examples(cycles: int = 4, epochs: int = 10, lr: float = 0.1) -> dict[str, tuple[ScheduleConfig, float]]:
    """``{label: (schedule, peak lr)}`` for :func:`landscape.plot.plot_schedules`: cyclic (``cycles`` cycles of
    ``epochs`` epochs, with and without warmup after the first cycle), one-cycle for the same budget
    (linear and cosine decay) and the step schedule (×0.1 at 50% and 75%)."""
    total = cycles * epochs
    return {
        f"cyclic ({cycles}×{epochs} epochs)": (ScheduleConfig(name="cyclic", cycles=cycles, epochs=epochs), lr),
        "cyclic, no warmup after cycle 1": (
            ScheduleConfig(name="cyclic", cycles=cycles, epochs=epochs, skip_warmup=True),
            lr,
        ),
        f"one-cycle ({total} epochs)": (ScheduleConfig(name="one-cycle", epochs=total), lr),
        "one-cycle, cosine decay": (ScheduleConfig(name="one-cycle", epochs=total, decay="cosine"), lr),
        "step (×0.1 at 50%, 75%)": (ScheduleConfig(name="step", epochs=total), lr),
    }
