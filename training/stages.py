"""What a recipe's stages are made of: where a stage starts (:class:`StageStart`), the stage itself
(:class:`Stage`) and what it produced (:class:`StageResult`); :class:`training.trainer.Trainer` runs them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from training.config import ScheduleConfig
from training.data import DataBundle
from training.masks import Mask


@dataclass
class StageStart:
    """Where a stage starts: a model state (``None``: keep the freshly built model), its mask, and
    optionally an optimiser state and a position ``(cycle, epoch)`` already completed (for weight
    rewinding that continues the schedule rather than restarting it)."""

    state: Mapping[str, torch.Tensor] | None
    mask: Mask
    optimizer_state: dict | None = None
    position: tuple[int, int] = (1, 0)


@dataclass
class Stage:
    """One training stage of a recipe.

    ``directory`` holds its files; ``level`` labels it in manifests; ``epoch_offset`` is the number of
    epochs trained before it in the recipe (it shifts the data-order seeds); ``data`` overrides the
    run's training data (e.g. corrupted data for sanity checks); ``extra_saves`` maps a global epoch
    of the stage to a file name written with the optimiser state (e.g. ``{10: "rewind.pt"}``);
    ``dynamic`` builds the updater of a mask that changes during the stage (:mod:`training.dynamic`).
    """

    directory: Path
    schedule: ScheduleConfig
    level: int = 0
    epoch_offset: int = 0
    data: DataBundle | None = None
    extra_saves: dict[int, str] = field(default_factory=dict)
    dynamic: Callable[..., Any] | None = None  # Context → training.dynamic.Dynamic: a mask that changes


@dataclass
class StageResult:
    """A finished stage: its folder, metrics, final checkpoint path and the checkpoints it wrote."""

    stage: Stage
    metrics: xr.Dataset
    checkpoints: list[dict[str, Any]]
    skipped: bool = False

    @property
    def final(self) -> Path:
        """``cycle_<C>.pt`` of the stage."""
        return self.stage.directory / f"cycle_{self.stage.schedule.cycles}.pt"
