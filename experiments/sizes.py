"""Maze sizes an agent was trained on. A study of an agent trained on small mazes must not mix in sizes it never
saw: the study and the probes default to the checkpoint's ``max_maze_size``, and the study plays the larger sizes
apart, in their own section, with no verdict drawn from them.
"""
from __future__ import annotations

import argparse
from typing import Any

from mazeagent.maze.level import WORLD

SIZE_HELP = ("largest maze size played, an odd int in [3, 25], or 'all' (default: the sizes the checkpoint was "
             "trained on, from its config's max_maze_size)")


def add_size_option(p: argparse.ArgumentParser) -> None:
    """The ``--max-maze-size`` option shared by ``study``, ``demo`` and ``probes``."""
    p.add_argument("--max-maze-size", default=None, metavar="N|all", help=SIZE_HELP)


def training_max_size(checkpoint: Any) -> int | None:
    """The largest maze size a checkpoint's agent was trained on; None when it saw every hard-mode size."""
    from mazeagent.env.levelgen import world_dim
    from mazeagent.ppo.checkpoint import load_policy, read_meta, resolve

    if str(checkpoint).endswith(".pth"):  # a published agent: the config import-torch records for it
        cfg = load_policy(checkpoint)[2].to_dict()
    else:
        cfg = read_meta(resolve(checkpoint))["config"]
    mode = cfg.get("distribution_mode", "hard")
    top = cfg.get("max_maze_size") or (world_dim(mode) if mode in ("easy", "hard") else None)
    return None if top is None or top >= WORLD else int(top)


def resolve_max_size(arg: str | None, checkpoint: Any = None) -> int | None:
    """``--max-maze-size`` as given (``all`` = None), else the checkpoint's training sizes (None without one)."""
    from mazeagent.env.levelgen import check_max_maze_size

    if arg is None:
        return training_max_size(checkpoint) if checkpoint is not None else None
    if str(arg).strip().lower() == "all":
        return None
    try:
        n = int(arg)
    except ValueError:
        raise ValueError(f"--max-maze-size must be an odd int in [3, {WORLD}] or 'all', got {arg!r}") from None
    n = check_max_maze_size(n, WORLD)
    return None if n == WORLD else n


def size_note(max_size: int | None, larger: str = "played apart in their own section") -> str:
    """The one line a report header states about maze sizes (``larger``: what became of the unseen sizes)."""
    if max_size is None:
        return f"all sizes 3–{WORLD}"
    return f"3–{max_size} (the agent's training sizes); larger mazes are never mixed in: {larger}"


def unseen_section(policy: Any, cfg: Any, trained: Any) -> Any:
    """Outcome rates on mazes larger than ``cfg.max_maze_size`` (``cfg.unseen_mazes`` of them), by size, beside the
    trained sizes' rates (``trained``: the study's episode table). Reported only: no prediction is scored here."""
    from mazeagent.experiments.report import Section
    from mazeagent.experiments.rollouts import HORIZONS, RolloutConfig, rollout
    from mazeagent.env.mazes import generate_mazes
    from mazeagent.experiments.stats import proportion

    mazes = generate_mazes(cfg.unseen_mazes, seed=cfg.seed + 1, min_size=cfg.max_maze_size + 2)
    ro = rollout(policy, mazes, RolloutConfig(horizon=cfg.horizon, greedy=cfg.greedy, chunk=cfg.chunk,
                                              seed=cfg.seed + 1), progress=False)
    df = ro.episodes
    h = max(x for x in HORIZONS if x <= cfg.horizon)
    cols = ("cheese", "top_right", "neither")

    def rates(d: Any) -> dict:
        return {"n": len(d), **{c: proportion(d[f"{c}_{h}"].to_numpy(bool)) for c in cols}}

    res = {"horizon": h, "max_trained_size": cfg.max_maze_size, "trained_sizes": rates(trained),
           "unseen_sizes": rates(df), "by_size": {int(n): rates(d) for n, d in df.groupby("maze_size")}}
    sec = Section("unseen_sizes", f"Maze sizes the agent never saw (> {cfg.max_maze_size}), reported apart", res)
    sec.text(f"Every analysis above uses mazes up to {cfg.max_maze_size}×{cfg.max_maze_size}, the sizes the agent "
             f"was trained on. Here {len(df)} larger stock mazes are played once each (horizon {h}); nothing here "
             "enters a verdict.")
    label = lambda name, r: [name, r["n"]] + [x for c in cols for x in (r[c]["rate"], r[c]["ci"])]  # noqa: E731
    rows = [label(f"trained sizes (≤ {cfg.max_maze_size})", res["trained_sizes"]),
            label("unseen sizes, all", res["unseen_sizes"])]
    rows += [label(f"{n}×{n}", r) for n, r in res["by_size"].items()]
    sec.table(["Mazes", "n"] + [x for c in cols for x in (c.replace("_", "-"), "95% CI")], rows)
    return sec

