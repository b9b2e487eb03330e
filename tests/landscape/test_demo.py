import numpy as np

from landscape.demo import demo_configs, run_demo
from landscape.results import load_dataset


def test_demo_configs_share_budget_init_and_mask():
    cyclic, one = demo_configs(cycles=4, epochs=5)
    assert cyclic.schedule.cycles * cyclic.schedule.epochs == one.schedule.cycles * one.schedule.epochs == 20
    assert cyclic.schedule.name == "cyclic" and one.schedule.name == "one-cycle"
    assert cyclic.seed == one.seed and cyclic.mask == one.mask and cyclic.model == one.model


def test_small_demo_end_to_end(tmp_path):
    result = run_demo(tmp_path, cycles=3, epochs=1, points=3, device="cpu", quiet=True)
    assert all(p.exists() and p.stat().st_size > 10_000 for p in result.figures)
    assert {p.name for p in result.figures} == {
        "learning_curves.png",
        "lmc_test.png",
        "lmc_train.png",
        "schedules.png",
        "hessian.png",
        "sign_flips.png",
    }
    hessian = load_dataset(tmp_path / "hessian.nc")
    assert hessian["checkpoint"].values.tolist() == ["init", "cyclic 1", "cyclic 2", "cyclic 3", "one-cycle"]
    assert (hessian["eigenvalue"] > 0).all()
    signs = load_dataset(tmp_path / "signs.nc")
    assert signs["cycle"].values.tolist() == [1, 2, 3] and (signs["flip_fraction_total"] > 0).all()
    lmc = load_dataset(tmp_path / "lmc.nc")
    assert lmc["pair"].values.tolist() == ["cycle 1→2", "cycle 2→3", "cyclic→one-cycle"]
    assert dict(lmc.sizes) == {"pair": 3, "split": 2, "alpha": 3, "endpoint": 2}  # endpoints as stored (BN)
    assert (lmc["error_barrier"].values >= 0).all() and np.isfinite(lmc["loss"].values).all()
    # barrier recomputed from the stored curves
    loss = lmc["loss"].values
    np.testing.assert_allclose(lmc["loss_barrier"].values, loss.max(-1) - 0.5 * (loss[..., 0] + loss[..., -1]))
    rows = result.summary_rows()
    assert [r[0] for r in rows] == ["cyclic", "one-cycle"]
    again = run_demo(tmp_path, cycles=3, epochs=1, points=3, device="cpu", quiet=True)
    assert again.cyclic.skipped and again.one_cycle.skipped
