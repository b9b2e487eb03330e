import dataclasses
from dataclasses import field, make_dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.config import (
    DataConfig,
    MaskConfig,
    ScheduleConfig,
    TrainConfig,
    canonical_string,
    config_hash,
    from_dict,
    from_yaml_text,
    replace_dotted,
    to_dict,
    to_yaml,
)
from training.errors import ConfigError
from training.validate import validate


def test_default_hash_is_stable():
    # Golden values: if these change, every existing run folder would be orphaned.
    assert canonical_string(TrainConfig()) == "{}"
    assert config_hash(TrainConfig()) == "44136fa355b3"
    cfg = TrainConfig(mask=MaskConfig(method="random", sparsity=0.9), schedule=ScheduleConfig(name="cyclic", cycles=4))
    assert (
        canonical_string(cfg)
        == '{"mask.method":"random","mask.sparsity":0.9,"schedule.cycles":4,"schedule.name":"cyclic"}'
    )
    assert config_hash(cfg) == "f55e8386e581"
    # field order in the dataclasses does not matter, only the sorted canonical string
    assert config_hash(replace_dotted(cfg, {})) == "f55e8386e581"
    # the ViT and MobileNetV2 of the reviewers' experiments, fixed from the day they were added
    vit = replace_dotted(TrainConfig(), {"model.name": "vit", "data.name": "cifar10"})
    mobile = replace_dotted(
        TrainConfig(), {"model.name": "mobilenetv2", "model.width": 16, "data.name": "fashion-mnist"}
    )
    assert (config_hash(vit), config_hash(mobile)) == ("81120b1a023a", "1a1a530f25f9")


def test_new_option_with_default_keeps_hash():
    Extended = make_dataclass("Extended", [("new_option", int, field(default=7))], bases=(TrainConfig,), frozen=True)
    cfg = TrainConfig(seed=5)
    ext = Extended(seed=5)
    assert config_hash(ext) == config_hash(cfg)
    assert config_hash(Extended(seed=5, new_option=8)) != config_hash(cfg)


def test_nonsemantic_fields_do_not_change_hash():
    base = TrainConfig(seed=1)
    for changed in (
        dataclasses.replace(base, device="cuda"),
        dataclasses.replace(base, name="other"),
        dataclasses.replace(base, save_every=2),
        dataclasses.replace(base, data=DataConfig(root="/data", num_workers=4, eval_batch_size=17)),
    ):
        assert config_hash(changed) == config_hash(base)
    assert config_hash(dataclasses.replace(base, seed=2)) != config_hash(base)
    assert config_hash(dataclasses.replace(base, data=DataConfig(batch_size=64))) != config_hash(base)


def test_run_name_uses_model_and_dataset():
    cfg = TrainConfig()
    assert cfg.run_name == f"cnn1d-mnist1d-{config_hash(cfg)}"
    assert dataclasses.replace(cfg, name="exp").run_name.startswith("exp-")


def test_yaml_round_trip():
    cfg = TrainConfig(
        mask=MaskConfig(method="random", sparsity=0.95),
        schedule=ScheduleConfig(name="step", milestones=(0.3, 0.6)),
        data=DataConfig(synthetic_shape=(1, 8, 8)),
        seed=9,
    )
    text = to_yaml(cfg)
    back = from_yaml_text(text)
    assert back == cfg
    assert to_yaml(back) == text
    assert config_hash(back) == config_hash(cfg)


@pytest.mark.parametrize(
    "text, message",
    [
        ("seed: 1\nbogus: 2\n", "unknown config key bogus"),
        ("mask:\n  sparsty: 0.5\n", "unknown config key mask.sparsty"),
        ("seed: one\n", "seed: expected an integer"),
        ("mask:\n  sparsity: high\n", "mask.sparsity: expected a number"),
        ("optim:\n  nesterov: 1\n", "optim.nesterov: expected true/false"),
        ("mask: 3\n", "mask: expected a mapping"),
        ("- a\n- b\n", "must hold a mapping"),
        ("seed: [1\n", "not valid YAML"),
    ],
)
def test_yaml_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        from_yaml_text(text)


def test_int_accepted_for_float_and_list_for_tuple():
    cfg = from_dict(TrainConfig, {"optim": {"lr": 1}, "schedule": {"milestones": [0.5]}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.schedule.milestones == (0.5,)


def test_replace_dotted_overrides_and_checks_types():
    cfg = replace_dotted(TrainConfig(), {"schedule.cycles": 3, "seed": 4})
    assert cfg.schedule.cycles == 3 and cfg.seed == 4
    with pytest.raises(ConfigError, match=r"schedule\.cycles: expected an integer"):
        replace_dotted(TrainConfig(), {"schedule.cycles": "three"})


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5])
def test_sparsity_out_of_range(sparsity):
    cfg = TrainConfig(mask=MaskConfig(method="random", sparsity=sparsity))
    with pytest.raises(ConfigError, match=r"sparsity must be in \[0, 1\)"):
        validate(cfg)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model.name": "resnet7"}, "unknown model 'resnet7'; choose from: cnn1d, mlp, mobilenetv2, resnet18"),
        ({"data.name": "mnist"}, "unknown dataset 'mnist'; choose from: cifar10"),
        ({"mask.method": "magic", "mask.sparsity": 0.5}, "unknown pruning method 'magic'"),
        ({"schedule.name": "cosine"}, "unknown schedule 'cosine'; choose from: cyclic, one-cycle, step"),
        ({"schedule.cycles": 3}, "one-cycle has exactly one cycle"),
        ({"schedule.epochs": 0}, "schedule.epochs must be positive"),
        ({"mask.sparsity": 0.5}, "with --prune none"),
        ({"mask.method": "random"}, "needs a sparsity"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_validation_messages(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(replace_dotted(TrainConfig(), changes))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    sparsity=st.floats(0.01, 0.99),
    cycles=st.integers(1, 10),
    lr=st.floats(1e-4, 1.0),
    milestones=st.lists(st.floats(0.01, 0.99), max_size=3),
)
def test_round_trip_property(seed, sparsity, cycles, lr, milestones):
    cfg = replace_dotted(
        TrainConfig(),
        {
            "seed": seed,
            "mask.method": "random",
            "mask.sparsity": sparsity,
            "schedule.name": "cyclic",
            "schedule.cycles": cycles,
            "optim.lr": lr,
            "schedule.milestones": milestones,
        },
    )
    back = from_yaml_text(to_yaml(cfg))
    assert back == cfg and config_hash(back) == config_hash(cfg)
    assert to_dict(back) == to_dict(cfg)
