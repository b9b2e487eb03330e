"""``python -m training``: bad input exits 2 with one line; a bug inside training is an internal error."""

import pytest

from training.__main__ import main


def test_unknown_config_key_is_bad_input(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--set", "schedule.epochz=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'schedule.epochz'") and err.count("\n") == 1
    assert main(["--out", str(tmp_path), "--set", "schedule.epochs"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err


def test_a_key_error_inside_training_is_an_internal_error(tmp_path, capsys, monkeypatch):
    def buggy_train(cfg, out, quiet=False):
        return {}["missing"]  # a KeyError from a bug, not from the user's config

    monkeypatch.setattr("training.run.train", buggy_train)
    assert main(["--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error: KeyError: 'missing'") and "unknown config key" not in err
    assert "--debug" in err and err.count("\n") == 1
    with pytest.raises(KeyError, match="missing"):
        main(["--out", str(tmp_path), "--quiet", "--debug"])
