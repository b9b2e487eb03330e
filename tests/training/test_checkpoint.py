import os
import pickle
import stat
import sys

import pytest
import torch

import landscape
from tests.helpers import checkpoint_meta
from training.checkpoint import read_checkpoint, save_checkpoint
from training.errors import CheckpointError, UserError
from training.masks import apply_mask
from training.models import build
from training.pruning import prune

_meta = checkpoint_meta


@pytest.fixture
def model_and_mask():
    torch.manual_seed(0)
    model = build("cnn1d", 10, input_shape=(1, 40), width=8)
    mask = prune(model, "random", 0.7, generator=torch.Generator().manual_seed(0))
    apply_mask(model, mask)
    return model, mask


def test_round_trip(tmp_path, model_and_mask):
    model, mask = model_and_mask
    path = save_checkpoint(tmp_path / "c.pt", model.state_dict(), mask, _meta())
    raw = torch.load(path, weights_only=True)  # the contract: plain weights_only load works
    assert set(raw) == {"model", "mask", "meta"}
    ckpt = landscape.load_checkpoint(path)
    assert ckpt.meta["epoch"] == 3 and ckpt.meta["model"] == "cnn1d"
    assert all(torch.equal(ckpt.mask[k], mask[k]) for k in mask)
    state = model.state_dict()
    assert all(torch.equal(ckpt.model.state_dict()[k], state[k]) for k in state)
    x = torch.randn(5, 1, 40)
    model.eval()
    torch.testing.assert_close(ckpt.model(x), model(x), rtol=0, atol=0)
    assert not ckpt.model.training
    assert len(ckpt.sha256) == 64
    # pruned entries are stored as exact zeros
    assert all(torch.all(raw["model"][k][~m] == 0) for k, m in raw["mask"].items())


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "mask": {}, "meta": _Evil()}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="refusing to load"):
        landscape.load_checkpoint(path)
    assert not marker.exists()
    # a plain pickle file (not a torch zip) is refused too, without running it
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError):
        read_checkpoint(plain)
    assert not marker.exists()


def test_truncated_checkpoint(tmp_path, model_and_mask):
    model, mask = model_and_mask
    path = save_checkpoint(tmp_path / "c.pt", model.state_dict(), mask, _meta())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupted or not a torch checkpoint"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"weights": {}}, "expected keys model, mask, meta"),
        ([1, 2, 3], "not a landscape checkpoint"),
        ({"model": {}, "mask": {}, "meta": {"model": "x"}}, "meta lacks"),
        (
            {"model": {"w": torch.ones(2)}, "mask": {"w": torch.ones(3, dtype=torch.bool)}, "meta": _meta()},
            "mask w has shape",
        ),
        ({"model": {"w": torch.ones(2)}, "mask": {"w": torch.ones(2)}, "meta": _meta()}, "dict of bool tensors"),
        ({"model": {}, "mask": {}, "meta": _meta(format_version=99)}, "format_version 99"),
    ],
)
def test_malformed_checkpoints(tmp_path, payload, message):
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_not_a_checkpoint_and_missing(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        read_checkpoint(text)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        read_checkpoint(tmp_path)


def test_state_dict_must_fit_architecture(tmp_path, model_and_mask):
    model, mask = model_and_mask
    path = save_checkpoint(tmp_path / "c.pt", model.state_dict(), mask, _meta(model="mlp", model_kwargs={}))
    with pytest.raises(CheckpointError, match="does not match model mlp"):
        landscape.load_checkpoint(path)


def test_failed_write_keeps_old_file(tmp_path, model_and_mask, monkeypatch):
    model, mask = model_and_mask
    path = save_checkpoint(tmp_path / "c.pt", model.state_dict(), mask, _meta())
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(UserError, match=r"cannot write .*No space left on device"):
        save_checkpoint(path, model.state_dict(), mask, _meta(epoch=4))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temporary files left


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder(tmp_path, model_and_mask):
    model, mask = model_and_mask
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(UserError, match="cannot write"):
        save_checkpoint(ro / "c.pt", model.state_dict(), mask, _meta())


def test_destination_folder_is_a_file(tmp_path, model_and_mask):
    model, mask = model_and_mask
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        save_checkpoint(tmp_path / "blocker" / "c.pt", model.state_dict(), mask, _meta())


def test_checkpoint_data_samples_a_fixed_class_balanced_subset(tiny_run):
    from training.checkpoint import balanced_subset, checkpoint_bundle, checkpoint_data

    ckpt = landscape.load_checkpoint(tiny_run.checkpoint())

    def labels(split, **kw):
        return torch.cat([y for _, y in checkpoint_data(ckpt, split, batch_size=64, **kw)])

    full = labels("test")
    sub = labels("test", samples=105)
    assert len(sub) == 105 and torch.bincount(sub, minlength=10).tolist() == [11] * 5 + [10] * 5
    assert torch.equal(sub, labels("test", samples=105))  # fixed by the seed
    assert not torch.equal(sub, labels("test", samples=105, samples_seed=1))
    assert len(labels("train", samples=105)) == 105 and len(full) == 1000
    bundle = checkpoint_bundle(ckpt, samples=50)
    x_sub = torch.cat([x for x, _ in bundle.eval_loader("train", 64)])
    x_full = torch.cat([x for x, _ in checkpoint_data(ckpt, "train", batch_size=4000)])
    assert all(any(torch.equal(row, other) for other in x_full) for row in x_sub[:5])  # real samples, unaltered
    uneven = torch.tensor([0] * 50 + [1] * 30 + [2] * 5)
    picked = uneven[balanced_subset(uneven, 40, torch.Generator().manual_seed(0))]
    assert torch.bincount(picked).tolist() == [18, 17, 5]  # a small class is exhausted, the rest share
    with pytest.raises(UserError, match="samples must be between 1"):
        balanced_subset(uneven, 0, torch.Generator())


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_process_umask(tmp_path, umask):
    """mkstemp makes private 0600 files; results must be as readable as any file the user writes."""
    import os
    import stat

    from training.fileio import atomic_write_json

    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(2)}, {}, checkpoint_meta())
    finally:
        os.umask(old)
    for name in ("a.json", "c.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
