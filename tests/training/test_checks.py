"""Ranges of numeric options: one rule, one message, for config fields and library parameters alike."""

from __future__ import annotations

import math

import pytest

from training.checks import AT_LEAST_ONE, FRACTION, POSITIVE, Range, check_number
from training.config import TrainConfig, leaf_fields, replace_dotted
from training.errors import ConfigError, UserError
from training.validate import validate


@pytest.mark.parametrize(
    ("valid", "inside", "outside", "words"),
    [
        (FRACTION, [0.0, 0.5, 0.999], [-0.1, 1.0, math.nan, math.inf], "in [0, 1)"),
        (POSITIVE, [1e-9, 3.0], [0.0, -1.0, math.inf], "positive"),
        (AT_LEAST_ONE, [1, 7], [0, -3, 1.5], "positive"),
        (Range(ge=2, integer=True), [2, 10], [1, 2.5], "at least 2"),
        (Range(le=1), [1.0, -5.0], [1.01], "at most 1"),
    ],
)
def test_ranges_contain_what_they_say(valid, inside, outside, words):
    assert valid.describe() == words
    assert all(valid.contains(v) for v in inside)
    assert not any(valid.contains(v) for v in outside)


def test_check_number_names_the_parameter_in_one_line():
    with pytest.raises(UserError, match=r"^points must be at least 2, got 1$") as exc:
        check_number(1, "points", Range(ge=2, integer=True))
    assert exc.value.param == "points"
    with pytest.raises(UserError, match="tol must be a finite number, got nan"):
        check_number(math.nan, "tol", POSITIVE)
    with pytest.raises(UserError, match="must be a number, got 'x'"):
        check_number("x", "tol", POSITIVE)
    check_number(None, "optional", POSITIVE)  # absent optional values pass


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("optim.lr", math.nan, "optim.lr must be a finite number, got nan"),
        ("optim.lr", math.inf, "optim.lr must be a finite number"),
        ("optim.weight_decay", -1e-4, "optim.weight_decay must be at least 0"),
        ("optim.momentum", 1.0, r"optim.momentum must be in \[0, 1\)"),
        ("schedule.gamma", 0.0, "schedule.gamma must be positive"),
        ("schedule.warmup_start", 1.5, r"schedule.warmup_start must be in \[0, 1\]"),
        ("mask.grasp_temperature", -200.0, "mask.grasp_temperature must be positive"),
        ("data.eval_batch_size", 0, "data.eval_batch_size must be positive"),
        ("data.synthetic_shape", [3, 32, 0], "data.synthetic_shape must be positive"),
        ("data.train_samples", 0, "data.train_samples must be positive"),
        ("recipe.sculpt_sparsity", 1.0, r"recipe.sculpt_sparsity must be in \(0, 1\)"),
        ("data_seed", -2, "data_seed must be at least 0"),
    ],
)
def test_degenerate_config_values_are_refused(key, value, message):
    with pytest.raises(ConfigError, match=message) as exc:
        validate(replace_dotted(TrainConfig(), {key: value}))
    assert exc.value.param == key and "\n" not in str(exc.value)


def test_every_numeric_config_field_declares_a_range():
    undeclared = [
        k
        for k, f, tp in leaf_fields(TrainConfig)
        if "valid" not in f.metadata and ("int" in str(tp) or "float" in str(tp))
    ]
    assert undeclared == []


def test_nan_learning_rate_is_refused_before_a_run_folder_exists(tmp_path, capsys):
    from landscape.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--lr", "nan", "--out", str(tmp_path), "--quiet"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --lr must be a finite number, got nan"
    assert list(tmp_path.iterdir()) == []  # nothing was created
