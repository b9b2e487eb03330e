"""Careless and hostile input through the Python API of ``training``: checkpoint metadata of the wrong types,
non-finite tensors, masks that do not fit, misspelt or mistyped options, output paths that would overwrite
an input, unreadable JSON; each is refused with the toolkit's own one-line error and the input untouched.
Also the progress shown for long work: lines in a log, an estimate for very long requests."""

from __future__ import annotations

import hashlib
import io
import itertools
import os

import pytest
import torch

from training.checkpoint import as_checkpoint, check_same_data, load_checkpoint, save_checkpoint
from training.errors import CheckpointError, ConfigError, UserError
from training.fileio import read_json
from training.masks import check_mask_fits
from training.outputs import check_output, check_output_folder, check_outputs
from training.progress import Progress
from training.pruning import prune, prune_checkpoint


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message and isinstance(exc_info.value, UserError)
    return message


@pytest.fixture(scope="module")
def ckpt(tiny_run):
    return load_checkpoint(tiny_run.checkpoint(2))


def weight_name(c) -> str:
    return next(k for k, v in c.state.items() if k in c.mask and v.dim() > 1)


def with_value(c, name, value, index=0):
    """A copy of checkpoint ``c`` with entry ``index`` of tensor ``name`` set to ``value``."""
    bad = c.clone()
    bad.state[name] = bad.state[name].clone()
    bad.state[name].view(-1)[index] = value
    return bad


# --- metadata of the wrong types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"format_version": "1"}, "meta format_version must be a positive integer, got '1'"),
        ({"format_version": 99}, "has format_version 99; this landscape reads up to"),
        ({"num_classes": "10"}, "meta num_classes must be a positive integer"),
        ({"num_classes": True}, "meta num_classes must be a positive integer, got True"),
        ({"model_kwargs": [["width", 8]]}, "meta model_kwargs must be a mapping"),
        ({"model_kwargs": None}, "meta model_kwargs must be a mapping"),
        ({"model": None}, "meta model must be a non-empty string"),
        ({"epoch": "3"}, "meta epoch must be a non-negative integer"),
        ({"config_hash": 5}, "meta config_hash must be a string"),
        ({"data_config": "mnist1d"}, "meta data_config must be a mapping"),
        ({"sparsity": float("nan")}, r"meta sparsity must be a number in \[0, 1\]"),
        ({"model": "transformer"}, "cannot build model transformer|unknown model"),
        ({"model_kwargs": {"width": -3}}, "cannot build model cnn1d|state dict does not match"),
        ({"num_classes": 3}, "state dict does not match model cnn1d"),
    ],
)
def test_checkpoint_meta_of_wrong_types_is_refused_on_load(tiny_run, tmp_path, change, pattern):
    raw = torch.load(tiny_run.checkpoint(2), weights_only=True)
    raw["meta"].update(change)
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    before = sha(path)
    with pytest.raises(CheckpointError, match=pattern) as exc:
        load_checkpoint(path)
    assert one_line(exc).startswith(str(path)) and sha(path) == before


def test_meta_without_a_required_key_or_not_a_mapping_is_refused(tiny_run, tmp_path):
    raw = torch.load(tiny_run.checkpoint(2), weights_only=True)
    for broken, pattern in (
        ({**raw, "meta": {k: v for k, v in raw["meta"].items() if k != "num_classes"}}, "meta lacks num_classes"),
        ({**raw, "meta": [1, 2]}, "meta is not a dict"),
        ({"model": raw["model"], "meta": raw["meta"]}, "expected keys model, mask, meta"),
        ([raw["model"]], "expected keys model, mask, meta"),
    ):
        torch.save(broken, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=pattern) as exc:
            load_checkpoint(tmp_path / "bad.pt")
        one_line(exc)


# --- non-finite tensors --------------------------------------------------------------------------------------


def test_non_finite_tensors_are_refused_naming_the_tensor(ckpt, tmp_path):
    weight = weight_name(ckpt)
    buffer = next(k for k in ckpt.state if k.endswith("running_var"))
    bias = next(k for k in ckpt.state if k.endswith("bias"))
    cases = [
        (with_value(ckpt, weight, float("nan")), rf"tensor {weight} has 1 NaN value"),
        (with_value(ckpt, weight, float("-inf"), index=-1), rf"tensor {weight} has 1 infinite value"),
        (with_value(ckpt, buffer, float("inf")), rf"tensor {buffer} has 1 infinite value"),
        (with_value(with_value(ckpt, bias, float("nan")), weight, float("nan")), r"\(1 more tensors too\)"),
    ]
    for bad, pattern in cases:
        with pytest.raises(CheckpointError, match=pattern) as exc:
            as_checkpoint(bad)
        one_line(exc)
    # the same from a file: the message names the file, the file is left as it was
    bad = with_value(ckpt, weight, float("nan"))
    path = save_checkpoint(tmp_path / "nan.pt", bad.state, bad.mask, bad.meta)
    before = sha(path)
    with pytest.raises(CheckpointError, match=rf"checkpoint {path}: tensor {weight} has 1 NaN value"):
        as_checkpoint(path)
    assert sha(path) == before
    as_checkpoint(ckpt)  # a healthy checkpoint passes (its integer num_batches_tracked included)


def test_pruning_refuses_non_finite_weights_and_never_writes_nan(ckpt):
    weight = weight_name(ckpt)
    bad = with_value(ckpt, weight, float("nan"))
    for method in ("magnitude", "random"):
        with pytest.raises(CheckpointError, match=f"tensor {weight} has 1 NaN value"):
            prune_checkpoint(bad, method, 0.9)
    model = bad.model
    with torch.no_grad():
        dict(model.named_parameters())[weight].view(-1)[0] = float("nan")
    with pytest.raises(UserError, match=f"{weight}.*(NaN|non-finite)"):
        prune(model, "magnitude", 0.9)
    pruned = prune_checkpoint(ckpt, "magnitude", 0.95)
    for name, m in pruned.mask.items():
        assert m.dtype == torch.bool
        assert torch.isfinite(pruned.state[name]).all() and (pruned.state[name][~m] == 0).all()
    assert abs(pruned.meta["sparsity"] - 0.95) < 0.01


# --- masks that do not fit, misspelt and mistyped options ----------------------------------------------------


def test_masks_that_do_not_fit_the_weights_are_refused(ckpt):
    weight = weight_name(ckpt)
    wrong_shape = ckpt.clone()
    wrong_shape.mask[weight] = wrong_shape.mask[weight].flatten()
    unknown = ckpt.clone()
    unknown.mask["classifier.extra.weight"] = torch.ones(3, dtype=torch.bool)
    for bad, pattern in (
        (wrong_shape, rf"mask entry {weight} has shape \(\d+,\) but the parameter has"),
        (unknown, "mask names a parameter the model does not have: classifier.extra.weight"),
    ):
        with pytest.raises(CheckpointError, match=pattern) as exc:
            as_checkpoint(bad)
        one_line(exc)
        with pytest.raises(CheckpointError, match=pattern):
            prune_checkpoint(bad, "magnitude", 0.9)
        with pytest.raises(ConfigError, match=pattern) as exc:
            prune(ckpt.model, "magnitude", 0.9, mask=bad.mask)
        assert exc.value.param == "mask"
    with pytest.raises(ConfigError, match="names a parameter"):
        check_mask_fits({"x": torch.ones(2, dtype=torch.bool)}, {"y": (2,)})


@pytest.mark.parametrize(
    "call, error, pattern, param",
    [
        (lambda m: prune(m, "random", 0.5, distributon="erk"), ConfigError, "has no option 'distributon'", None),
        (lambda m: prune(m, "magnitude", 0.5, temperature=2.0), ConfigError, "has no option 'temperature'", None),
        (lambda m: prune(m, "magnitude", "0.5"), ConfigError, "sparsity must be a number, got '0.5'", "sparsity"),
        (lambda m: prune(m, "magnitude", float("nan")), ConfigError, "sparsity must be a finite number", "sparsity"),
        (lambda m: prune(m, "magnitude", 1.0), ConfigError, r"sparsity must be in \[0, 1\)", "sparsity"),
        (lambda m: prune(m, "magnitude", True), ConfigError, "sparsity must be a number", "sparsity"),
        (lambda m: prune(m, "magnitde", 0.5), UserError, "unknown pruning method 'magnitde'", None),
        (lambda m: prune(m, "magnitude", 0.5, scope="local"), ConfigError, "unknown scope 'local'", None),
        (lambda m: prune(m, "magnitude", 0.5, names=["fc.wieght"]), ConfigError, "fc.wieght", "names"),
        (lambda m: prune(m, "snip", 0.5), ConfigError, "needs labelled data", None),
    ],
)
def test_misspelt_and_mistyped_pruning_options_are_toolkit_errors(ckpt, call, error, pattern, param):
    before = {k: v.clone() for k, v in ckpt.model.state_dict().items()}
    with pytest.raises(error, match=pattern) as exc:
        call(ckpt.model)
    one_line(exc)
    if param is not None:
        assert exc.value.param == param
    assert all(torch.equal(before[k], v) for k, v in ckpt.model.state_dict().items())


def test_prune_checkpoint_refuses_misspelt_and_out_of_range_options(ckpt):
    with pytest.raises(ConfigError, match="has no option 'distributon'"):
        prune_checkpoint(ckpt, "random", 0.5, distributon="erk")
    with pytest.raises(ConfigError, match="samples_per_class must be positive"):
        prune_checkpoint(ckpt, "snip", 0.5, samples_per_class=0)


def test_different_training_data_is_refused_unless_intended(ckpt):
    other = ckpt.clone()
    other.meta["data_config"] = {**other.meta["data_config"], "synthetic_train": 7}
    with pytest.raises(CheckpointError, match="trained on different data") as exc:
        check_same_data(ckpt, other)
    assert exc.value.param == "allow_different_data"
    same = ckpt.clone()
    same.meta["data_config"] = {**same.meta["data_config"], "batch_size": 7, "root": "/elsewhere"}
    check_same_data(ckpt, same)  # batch size and folder do not change the samples


# --- output paths, JSON ----------------------------------------------------------------------------------------


def test_output_paths_that_would_overwrite_an_input_are_refused(tmp_path):
    source = tmp_path / "a.nc"
    source.write_text("input")
    (tmp_path / "link.nc").symlink_to(source)
    os.link(source, tmp_path / "hard.nc")
    run = tmp_path / "run"
    (run / "level_0").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    same = tmp_path / "r.nc"
    cases = [
        (lambda: check_output(source, inputs=[source]), "out .* is one of the inputs"),
        (lambda: check_output(tmp_path / "link.nc", inputs=[source]), "is one of the inputs"),
        (lambda: check_output(tmp_path / "hard.nc", inputs=[source]), "is one of the inputs"),
        (lambda: check_output(tmp_path / "sub" / ".." / "a.nc", inputs=[source]), "is one of the inputs"),
        (lambda: check_output(run / "level_0" / "x.nc"), "is inside the run folder"),
        (lambda: check_output(run / "new" / "deeper" / "x.nc"), "is inside the run folder"),
        (lambda: check_output(tmp_path / "file" / "x.nc"), "is a file, not a folder"),
        (lambda: check_output(tmp_path / "dangling" / "x.nc"), "is a broken link"),
        (lambda: check_output(tmp_path / "x.csv"), r"out must end in \.nc"),
        (lambda: check_output(tmp_path / "x.nc", suffixes=(".pt",), param="vectors"), r"vectors must end in \.pt"),
        (lambda: check_outputs([("out", same, (".nc",)), ("copy", same, (".nc",))]), "copy and out are the same file"),
        (lambda: check_output_folder(tmp_path / "file"), "is a file, not a folder"),
        (lambda: check_output_folder(run / "level_0"), "is inside the run folder"),
    ]
    before = {p.name: sha(p) for p in tmp_path.iterdir() if p.is_file()}
    for call, pattern in cases:
        with pytest.raises(UserError, match=pattern) as exc:
            call()
        one_line(exc)
    assert {p.name: sha(p) for p in tmp_path.iterdir() if p.is_file()} == before
    assert check_output(None) is None
    assert check_output(tmp_path / "new" / "R.NC", inputs=[source]) == tmp_path / "new" / "R.NC"
    assert check_output_folder(tmp_path / "runs") == tmp_path / "runs"


def test_unreadable_json_is_a_user_error(tmp_path):
    assert read_json(tmp_path / "missing.json") is None
    cases = {"truncated.json": b'{"status": "comp', "binary.json": b"\xff\xfe\x00garbage", "empty.json": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError, match=f"{name} is not a readable JSON file") as exc:
            read_json(tmp_path / name)
        one_line(exc)
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(UserError, match=r"folder\.json is not a readable JSON file"):
        read_json(tmp_path / "folder.json")


# --- progress ------------------------------------------------------------------------------------------------


class Log(io.StringIO):
    """A log file: not a terminal."""

    def isatty(self) -> bool:
        return False


def test_progress_writes_lines_to_a_log_and_an_estimate_for_long_work(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    log = Log()
    ticks = itertools.count(0.0, 90.0)  # every step "takes" 90 s
    with Progress(4, "train", "epochs", stream=log, clock=lambda: next(ticks)) as p:
        for epoch in range(1, 5):
            p.update(1, f"epoch {epoch}")
    assert log.getvalue().splitlines() == [
        "train: 4 epochs will take about 6 min 0 s (1 min 30 s each, measured on the first)",
        *[f"train: {i}/4 epochs (epoch {i})" for i in range(1, 5)],
    ]
    log = Log()
    with Progress(1000, "surface", "points", stream=log, lines=4, clock=lambda: 0.0) as p:
        for _ in range(1000):
            p.update(1)
    assert log.getvalue().splitlines() == [f"surface: {n}/1000 points" for n in (250, 500, 750, 1000)]  # no estimate


def test_progress_is_silent_when_quiet_or_in_ci(monkeypatch):
    for quiet, ci in ((True, None), (False, "1")):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        log, clock = Log(), itertools.count(0.0, 1000.0).__next__
        with Progress(3, "interpolate", "α", quiet=quiet, stream=log, clock=clock) as p:
            for _ in range(3):
                p.update(1)
        assert log.getvalue() == ""
