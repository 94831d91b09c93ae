"""PPO config: presets, --set parsing, and validation errors that arrive before anything compiles."""
from __future__ import annotations

import pytest

from mazeagent.ppo.config import PRESETS, PPOConfig, make_config, parse_overrides, preset


def test_presets_are_valid_and_paper_is_the_published_config():
    for cfg in PRESETS.values():
        cfg.validate()
    p = preset("paper")
    assert (p.num_envs, p.num_steps, p.update_epochs, p.num_minibatches) == (512, 256, 3, 16)
    assert (p.lr, p.gamma, p.gae_lambda, p.clip_eps, p.ent_coef, p.vf_coef, p.max_grad_norm, p.adam_eps) == \
        (5e-4, 0.999, 0.95, 0.2, 0.01, 0.5, 0.5, 1e-5)
    assert (p.total_timesteps, p.net_scale, p.rand_region, p.distribution_mode) == (80_000_000, 4, 5, "hard")
    assert p.minibatch_size == 8192 and p.num_updates == 610
    assert (p.reward_norm_gamma, p.reward_clip, p.norm_adv, p.norm_reward) == (0.99, 10.0, True, True)


def test_overrides_are_typed():
    got = parse_overrides(["lr=3e-4", "rand_region=none", "total_timesteps=8e6", "anneal_lr=false",
                           "num_envs=64", "wandb_mode=disabled", "wandb_entity=me"])
    assert got == {"lr": 3e-4, "rand_region": None, "total_timesteps": 8_000_000, "anneal_lr": False,
                   "num_envs": 64, "wandb_mode": "disabled", "wandb_entity": "me"}
    assert type(got["total_timesteps"]) is int
    cfg = make_config("tiny", ["rand_region=0"], seed=7)
    assert cfg.rand_region == 0 and cfg.seed == 7 and cfg.num_envs == PRESETS["tiny"].num_envs


@pytest.mark.parametrize("pairs, match", [
    (["lrr=1"], r"unknown config key.*'lrr'.*did you mean 'lr'"),
    (["lr"], r"key=value"),
    (["num_envs=abc"], r"cannot parse num_envs='abc' as int"),
    (["num_envs=2.5"], r"cannot parse num_envs"),
    (["anneal_lr=maybe"], r"cannot parse anneal_lr"),
])
def test_bad_overrides(pairs, match):
    with pytest.raises(ValueError, match=match):
        make_config("tiny", pairs)


@pytest.mark.parametrize("pairs, match", [
    (["lr=-1"], r"lr must be > 0"),
    (["num_minibatches=7"], r"num_minibatches=7 must divide the batch num_envs\*num_steps=512"),
    (["max_maze_size=8"], r"max_maze_size must be None or an odd int in \[3, 15\]"),
    (["distribution_mode=hard", "max_maze_size=27"], r"max_maze_size must be None or an odd int in \[3, 25\]"),
    (["gamma=1.5"], r"gamma must be in \(0, 1\]"),
    (["num_envs=0"], r"num_envs must be > 0"),
    (["rand_region=-2"], r"rand_region must be None"),
    (["distribution_mode=medium"], r"distribution_mode must be 'easy' or 'hard'"),
    (["wandb_mode=cloud"], r"wandb_mode must be one of"),
    (["total_timesteps=100"], r"less than one update"),
    (["ent_coef=-0.1", "clip_eps=0"], r"clip_eps must be > 0.*ent_coef must be >= 0"),
])
def test_invalid_values(pairs, match):
    with pytest.raises(ValueError, match=match):
        make_config("tiny", pairs)


def test_from_dict_rejects_unknown_keys_and_wrong_types():
    d = preset("tiny").to_dict()
    assert PPOConfig.from_dict(d) == preset("tiny")
    with pytest.raises(ValueError, match="unknown config key"):
        PPOConfig.from_dict({**d, "learning_rate": 1e-3})
    with pytest.raises(ValueError, match=r"lr='fast' should be float"):
        PPOConfig.from_dict({**d, "lr": "fast"})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")


def test_cli_rejects_bad_config_before_compiling(tmp_path):
    """The error comes from the config layer: the trainer module is never even imported, and nothing is written."""
    import subprocess
    import sys

    out = tmp_path / "run"
    code = ("import sys; from mazeagent import cli; "
            f"rc = cli.main(['train', '--preset', 'tiny', '--set', 'num_minibatches=3', '--out', {str(out)!r}]); "
            "print(rc, 'mazeagent.ppo.train' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["2", "False"], res.stderr
    assert "num_minibatches=3 must divide" in res.stderr
    assert not out.exists()
