"""Provenance and re-derivation: results record where they were made, ``landscape reproduce GROUP
--check`` re-derives a group and compares it with the committed results, and the report marks verdicts
within the measured cross-machine spread as fragile."""

from __future__ import annotations

import json

import pytest
import torch
import xarray as xr

from landscape.cli.main import main
from landscape.experiments.check import differs, fragile, load_spreads
from landscape.experiments.report import part2
from landscape.experiments.review_settings import BoostSettings
from training.environment import environment, git_commit


@pytest.fixture
def tiny_boost_tier(hidden_tier):
    return hidden_tier("tiny-check", 4, boost=BoostSettings(cycles=2, epochs=1, sparsities=(0.5, 0.9)))


def _cli(args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_environment_names_the_place():
    env = environment()
    assert env["torch_version"] == str(torch.__version__) and env["torch_threads"] == torch.get_num_threads()
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(env) >= {"landscape_version", "git_commit", "numpy_version", "cpu_model", "python_version"}


def test_git_commit_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == ("", False)


def test_fragile_and_spreads(tmp_path):
    result = {"metric": "accuracy", "verdict": "reproduces", "ci_low": 0.0005, "ci_high": 0.0066}
    assert fragile(result, {"accuracy": 0.0013}) and not fragile(result, {"accuracy": 0.0004})
    assert not fragile(result, {})  # nothing measured: nothing marked
    assert not fragile({**result, "verdict": "inconclusive", "ci_low": -0.001}, {"accuracy": 0.01})
    assert fragile({**result, "verdict": "differs", "ci_low": -0.02, "ci_high": -0.001}, {"accuracy": 0.002})
    here = environment()
    there = {**here, "cpu_model": "AMD EPYC"}
    assert differs(here, there) and not differs(here, {**here, "git_commit": "other", "torch_threads": 7})
    (tmp_path / "same.json").write_text(
        json.dumps({"spread": {"accuracy": 0.5}, "committed_environment": here, "rederived_environment": here})
    )
    (tmp_path / "other.json").write_text(
        json.dumps({"spread": {"accuracy": 0.002}, "committed_environment": here, "rederived_environment": there})
    )
    assert load_spreads([tmp_path]) == {"accuracy": 0.002}  # a check on one machine measures nothing


def test_check_rederives_and_compares(tiny_boost_tier, tmp_path, capsys):
    common = ["--tier", "tiny-check", "--quiet", "--jobs", "1", "--results", str(tmp_path / "results")]
    common += ["--figures", str(tmp_path / "figures")]
    assert _cli(["reproduce", "boost-vs-sparsity", *common, "--runs", str(tmp_path / "runs")]) == 0
    payload = json.loads((tmp_path / "results" / "boost-vs-sparsity-claims.json").read_text())
    ds = xr.load_dataset(tmp_path / "results" / "boost-vs-sparsity.nc")
    assert payload["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert json.loads(ds.attrs["environment"]) == payload["environment"]
    assert all(line.startswith("torch ") for line in ds["made_on"].values)  # every run's manifest says where
    manifest = json.loads((tmp_path / "runs" / ds["run_dir"].values[0].split("/")[-1] / "manifest.json").read_text())
    assert manifest["environment"]["torch_version"] == str(torch.__version__)
    capsys.readouterr()

    # same machine, same build: every run bitwise equal, nothing moves
    assert _cli(["reproduce", "boost-vs-sparsity", *common, "--check", "--scratch", str(tmp_path / "s1")]) == 0
    out = capsys.readouterr().out
    assert "runs: 8 of 8 identical" in out and "verdicts changed: 0" in out
    record = json.loads((tmp_path / "results" / "checks" / "boost-vs-sparsity.json").read_text())
    assert record["summary"]["runs_identical"] == 8 and record["spread"] == {"accuracy": 0.0, "slope": 0.0}

    # results made elsewhere: one run's accuracy differs by 1 pp; the claims file says another CPU
    ds["accuracy"].values[0] += 0.01
    ds.to_netcdf(tmp_path / "results" / "boost-vs-sparsity.nc")
    payload["environment"]["cpu_model"] = "AMD EPYC"
    v2 = next(c for c in payload["claims"] if c["tested"] and c["id"] == "V-2")
    v2["ci_low"] -= 0.05
    (tmp_path / "results" / "boost-vs-sparsity-claims.json").write_text(json.dumps(payload))
    assert _cli(["reproduce", "boost-vs-sparsity", *common, "--check", "--scratch", str(tmp_path / "s2")]) == 0
    out = capsys.readouterr().out
    assert "runs: 7 of 8 identical; largest accuracy difference 1.00 pp" in out and "AMD EPYC" in out
    record = json.loads((tmp_path / "results" / "checks" / "boost-vs-sparsity.json").read_text())
    assert record["spread"]["accuracy"] == pytest.approx(0.05)
    assert load_spreads([tmp_path / "results" / "checks"])["accuracy"] == pytest.approx(0.05)


def test_check_refuses_a_group_never_run(tiny_boost_tier, tmp_path, capsys):
    args = ["reproduce", "boost-vs-sparsity", "--tier", "tiny-check", "--check", "--results", str(tmp_path)]
    assert _cli(args) == 2
    err = capsys.readouterr().err
    assert "no results of group 'boost-vs-sparsity'" in err and "Traceback" not in err


def test_report_marks_fragile_verdicts():
    claim = {
        "id": "P1-1", "label": "random@90%, cyclic vs ordinary", "group": "cyclic", "metric": "accuracy",
        "direction": 1, "effect": 0.004, "ci_low": 0.001, "ci_high": 0.007, "n": 5, "verdict": "reproduces",
        "mean_a": 0.9, "mean_b": 0.896, "tested": True,
    }  # fmt: skip
    medium = {"cyclic": {"group": "cyclic", "claims": [claim], "summary": {}, "timing": {}}}
    block = part2(medium, {}, spreads={"accuracy": 0.002})
    assert "**reproduces** (fragile)" in block and "accuracy 0.20 pp" in block
    assert "(fragile)" not in part2(medium, {}, spreads={"accuracy": 0.0005}).split("### Time")[0].split("|---|")[1]


def test_runs_named_by_another_runs_path_are_matched_by_labels(tmp_path):
    from landscape.experiments.check import compare_runs

    def write(name, dirs, acc):
        ds = xr.Dataset(
            {
                "run_dir": ("run", dirs),
                "init": ("run", ["warmup", "random", "warmup"]),
                "seed": ("run", [0, 0, 1]),
                "accuracy": ("run", acc),
            }
        )
        ds.attrs["group"] = "coupling"
        ds.to_netcdf(tmp_path / name)
        return tmp_path / name

    a = write("a.nc", ["r/x-1", "r/x-2", "r/x-3"], [0.9, 0.8, 0.7])
    b = write("b.nc", ["s/y-1", "s/y-2", "s/y-3"], [0.9, 0.81, 0.7])  # other hashes: the ticket's path differs
    table = compare_runs(a, b)
    assert table["identical"].tolist() == [True, False, True]
    assert table["accuracy_diff"].tolist() == pytest.approx([0.0, 0.01, 0.0])
