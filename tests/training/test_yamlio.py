"""YAML as people write it: duplicate keys and aliases refused with their line, YAML 1.2 floats accepted,
in config files, sweep files and --set values alike."""

from __future__ import annotations

import pytest

from landscape.cli import main
from landscape.sweep import load_sweep
from training.config import from_yaml_text, load_yaml
from training.errors import ConfigError
from training.fields import parse_overrides
from training.yamlio import load_yaml_text


def test_duplicate_keys_are_refused_naming_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^cfg: line 3: duplicate key 'model' \(first on line 1\)$"):
        from_yaml_text("model: {name: cnn1d}\nseed: 1\nmodel: {name: mlp}\n", source="cfg")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("out: runs\ngrid: {seed: [0, 1]}\ngrid: {seed: [2]}\n")
    with pytest.raises(ConfigError, match="line 3: duplicate key 'grid' \\(first on line 2\\)"):
        load_sweep(sweep)


def test_an_alias_bomb_is_refused_at_once(tmp_path, capsys):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as exc:  # refused while composing the first alias: 9**9 nodes never built
        main(["train", "--config", str(tmp_path / "bomb.yaml"), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert (
        exc.value.code == 2
        and err == f"error: {tmp_path / 'bomb.yaml'}: line 2: YAML aliases (*a) are not allowed in configs"
    )
    assert not (tmp_path / "runs").exists()


def test_float_literals_as_python_writes_them(tmp_path):
    assert load_yaml_text("a: 5e-4\nb: 1E3\nc: -2.5e+1\nd: 7\ne: name") == {
        "a": 5e-4, "b": 1000.0, "c": -25.0, "d": 7, "e": "name"
    }  # fmt: skip
    (tmp_path / "cfg.yaml").write_text("optim: {weight_decay: 5e-4, lr: 1e-1}\n")
    cfg = load_yaml(tmp_path / "cfg.yaml")
    assert (cfg.optim.weight_decay, cfg.optim.lr) == (5e-4, 0.1)
    assert parse_overrides(["optim.weight_decay=5e-4"]) == {"optim.weight_decay": 5e-4}
    with pytest.raises(ConfigError, match="expected a number, got 'fast'"):
        from_yaml_text("optim: {lr: fast}")
