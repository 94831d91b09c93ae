"""PPO for the maze agents: config + presets, the jitted trainer, checkpoints, the resumable run loop, evaluation.

``load_policy(dir) -> (net, params, config)`` is how the rest of the suite reads a trained agent.
"""
from mazeagent.ppo.checkpoint import load_checkpoint, load_policy, save_checkpoint
from mazeagent.ppo.config import PPOConfig, PRESETS, make_config, preset

__all__ = ["PPOConfig", "PRESETS", "make_config", "preset", "save_checkpoint", "load_checkpoint", "load_policy",
           "make_train", "Trainer", "RunnerState", "run"]


def __getattr__(name: str):  # jax-heavy pieces load on first use, so `mazeagent --help` stays fast
    if name in ("make_train", "Trainer", "RunnerState"):
        from mazeagent.ppo import train
        return getattr(train, name)
    if name == "run":
        from mazeagent.ppo.runner import run
        return run
    raise AttributeError(f"module 'mazeagent.ppo' has no attribute {name!r}")
