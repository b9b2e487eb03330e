"""Mask–initialisation coupling ablations (arXiv 2406.02773 §5; the warmup-signs arm as Gadhikar &
Burkholz's ``imp-lrr-lts``): train the mask of ``recipe.mask_from`` from one of these starts:

* ``random``: fresh weights drawn from a stream named by the seed and the arm, which can never be the
  θ₀ of the run that produced the mask (that is ``rewind-init``);
* ``rewind-init``: θ₀ of the run that produced the mask (``recipe.init_from``, else found from
  ``mask_from``'s run folder);
* ``warmup``: θ_warm, the dense weights after the warmup (``recipe.warmup_from``);
* ``warmup-signs``: |θ_warm| ⊙ sign(θ_signs) and ``random-signs``: |θ_random| ⊙ sign(θ_signs), with the
  signs of ``recipe.signs_from`` (default: the mask's checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from training.checkpoint import read_checkpoint
from training.config import TrainConfig
from training.errors import CheckpointError, ConfigError
from training.fileio import read_json
from training.recipes.common import final_mask_op
from training.trainer import Stage, StageResult, StageStart, Trainer


def _source(path: str | Path | None, tr: Trainer, what: str) -> dict[str, Any]:
    if not path:
        raise ConfigError(f"recipe coupling needs {what}")
    ckpt = read_checkpoint(path)
    meta = ckpt["meta"]
    if meta["model"] != tr.cfg.model.name or dict(meta.get("model_kwargs", {})) != tr.model_kwargs:
        raise CheckpointError(
            f"{path} holds a {meta['model']} {meta.get('model_kwargs')} model; this run trains "
            f"{tr.cfg.model.name} {tr.model_kwargs}"
        )
    return ckpt


def run_initialisation(checkpoint: str | Path) -> Path:
    """θ₀ of the run that wrote ``checkpoint``: the first ``init.pt`` of level 0 in the manifest of the
    nearest enclosing run folder."""
    for folder in Path(checkpoint).resolve().parents:
        manifest = read_json(folder / "manifest.json")
        if manifest is None:
            continue
        for entry in manifest.get("checkpoints", []):
            if entry.get("level") == 0 and Path(entry["path"]).name == "init.pt":
                return folder / entry["path"]
        break
    raise ConfigError(f"cannot find the run folder (with an init.pt) of {checkpoint}; give --init-from")


def recipe_coupling(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Train the mask of ``recipe.mask_from`` from ``recipe.coupling_init`` (see the module docstring)."""
    r = cfg.recipe

    def start() -> StageStart:
        source = _source(r.mask_from, tr, "--mask-from")
        mask = source["mask"]
        signs = _source(r.signs_from, tr, "--signs-from")["model"] if r.signs_from else source["model"]
        arm = r.coupling_init
        if arm in ("warmup", "warmup-signs"):
            state = dict(_source(r.warmup_from, tr, "--warmup-from")["model"])
        elif arm == "rewind-init":
            state = dict(_source(r.init_from or run_initialisation(r.mask_from), tr, "--init-from")["model"])
        else:
            state = dict(tr.fresh_model(stream=f"coupling/{arm}").state_dict())
        if arm in ("warmup-signs", "random-signs"):
            for n in mask:
                state[n] = state[n].abs() * torch.sign(signs[n])
        return StageStart(*final_mask_op(tr, state, dict(mask), 0))

    return [tr.run_stage(Stage(tr.run_dir, cfg.schedule, level=0), start)]
