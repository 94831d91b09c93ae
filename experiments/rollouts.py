"""Batched rollouts of a policy on generated mazes, with episode-level attainment bookkeeping.

Why it is fast: a maze policy is memoryless and procgen's frame is a function of (maze, mouse square, facing), so
the policy's action distribution is a table over those states. Rollouts fill that table lazily: all episodes of a
chunk advance inside one jitted ``while_loop`` until each has finished or stands on a state whose logits are not
known yet; those states (plus, to fill the padded batch, their neighbours) go through the policy in one batch, and
the loop resumes. The network thus runs once per *distinct visited state*, not once per step, and the results are
exactly those of stepping the env with the same per-(maze, step) sampling keys.

Sampling draws the move group (left/down/up/right/stay) from the 15→5 grouped probabilities: actions within a group
have identical dynamics, so this is the 15-way categorical in distribution. ``greedy=True`` takes the argmax of the
15 logits. Horizons 256 and 500 come from one 500-step rollout (procgen's timeout).

Policies follow :class:`mazeagent.experiments.policies.Policy`: ``policy(states, key) -> (B, 15) logits``, deterministic in
the state (maze, square, facing), which is what makes the distinct-state cache exact.
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mazeagent.experiments.policies import NOOP, Policy, States, ValuePolicy
from mazeagent.batching import bucket, pad_rows, pad_to_bucket
from mazeagent.env.mazes import renderers, static_frames
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import SPACE, TIMEOUT, WALL, WORLD
from mazeagent.nets import ACTION_TO_GROUP, group_probs

HORIZONS = (256, 500)
GROUP_ACTION = np.array([1, 3, 5, 7, 4], np.int32)  # a procgen action in each group (left, down, up, right, noop)
EVAL_BATCH = 256  # policy batch: on CPU as efficient per frame as 1024, and it caps the padding waste
MIN_BATCH = 16  # smallest padded batch (policy calls, moves, table writes): few compiled shapes
MOVE_CHARS = "LDURN"  # per group, for the tidy table's ``actions`` string


# ------------------------------------------------------------------------------------------ policy evaluation

def evaluate(policy: Policy, mazes: Mazes, idx: np.ndarray, squares: np.ndarray, reflected: np.ndarray,
             key: jax.Array, with_value: bool = False, frames: Callable[[], jax.Array] | None = None,
             frame_rows: np.ndarray | None = None, max_batch: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray | None]:
    """Policy logits (and values, for a :class:`~mazeagent.experiments.policies.ValuePolicy`) with the mouse of maze
    ``idx[i]`` at world ``squares[i]`` facing ``reflected[i]``. The policy sees batches of at most ``max_batch``
    states padded to a few sizes (so a network compiles few shapes). ``frames()`` may give pre-rendered static
    frames, ``frame_rows[i]`` = the row of query i's maze in them; they are rendered only if the policy looks."""
    idx, squares = np.asarray(idx), np.asarray(squares, np.int32)
    reflected = np.asarray(reflected, bool)
    if with_value and not isinstance(policy, ValuePolicy):
        raise ValueError("values need a network policy (NetPolicy); scripted policies have no value head")
    _, compose = renderers()
    if frames is None:
        uniq, frame_rows = np.unique(idx, return_inverse=True)
        frames = functools.cache(lambda: static_frames(mazes, uniq))
    pos = np.asarray(frame_rows).reshape(-1)
    logits, values = [], []
    for s in range(0, len(idx), max_batch):
        k = len(idx[s:s + max_batch])
        size = bucket(k, MIN_BATCH, max_batch)
        p, m, sq, rf = (pad_rows(a[s:s + max_batch], size) for a in (pos, idx, squares, reflected))
        states = States(mazes, m, sq, rf,
                        lambda p=p, sq=sq, rf=rf: compose(frames()[p], jnp.asarray(sq), jnp.asarray(rf)))
        if with_value:
            lg, v = policy.logits_value(states)
            values.append(np.asarray(v)[:k])
        else:
            lg = policy(states, key)
        logits.append(np.asarray(lg, np.float32)[:k])
    return np.concatenate(logits), (np.concatenate(values) if with_value else None)


# ------------------------------------------------------------------------------------------------ the engine

def grouped_probs(logits: np.ndarray) -> np.ndarray:
    """:func:`mazeagent.nets.group_probs` on host logits, padded to a bucket size so few shapes compile."""
    k = len(logits)
    return np.asarray(group_probs(jnp.asarray(pad_to_bucket(np.asarray(logits, np.float32), MIN_BATCH))))[:k]


def move(walls: jax.Array, pos: jax.Array, reflected: jax.Array, group: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The env's own dynamics (:func:`mazeagent.env.core.move`), batched, for a move group per episode."""
    from mazeagent.env.core import move as env_move

    def one(w, p, r, g):
        return env_move(lambda row, col: jnp.where(w[row, col], WALL, SPACE), p, r, jnp.asarray(GROUP_ACTION)[g], w.shape[-1])

    return jax.vmap(one)(walls, pos, reflected, group)


_move_jit = jax.jit(move)


def move_host(walls: np.ndarray, pos: np.ndarray, reflected: np.ndarray, group: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`move` on host arrays, padded to a bucket size so few shapes compile."""
    k = len(pos)
    size = bucket(k, MIN_BATCH)
    p, r = _move_jit(*(jnp.asarray(pad_rows(np.asarray(a), size)) for a in (walls, pos, reflected, group)))
    return np.asarray(p)[:k], np.asarray(r)[:k]


@functools.partial(jax.jit, static_argnames=("horizon", "greedy"))
def _advance(st: dict, logp, best, known, walls, cheese, tr, region, keys, horizon: int, greedy: bool) -> dict:
    """Step every episode whose current state has known logits, until none can move (done or unknown state)."""
    M, W = walls.shape[0], walls.shape[-1]
    rows = jnp.arange(M)

    def runnable(s):
        sidx = (s["pos"][:, 0] * W + s["pos"][:, 1]) * 2 + s["ref"]
        return ~s["done"] & (s["t"] < horizon) & known[rows, sidx], sidx

    def body(s):
        run, sidx = runnable(s)
        step_keys = jax.vmap(jax.random.fold_in)(keys, s["t"])
        g = best[rows, sidx] if greedy else jax.vmap(jax.random.categorical)(step_keys, logp[rows, sidx])
        pos, ref = move(walls, s["pos"], s["ref"], g)
        t1 = s["t"] + 1
        at_cheese = (pos == cheese).all(-1)
        first = lambda old, hit: jnp.where(run & hit & (old < 0), t1, old)  # noqa: E731
        return {"pos": jnp.where(run[:, None], pos, s["pos"]), "ref": jnp.where(run, ref, s["ref"]),
                "t": jnp.where(run, t1, s["t"]), "done": s["done"] | (run & (at_cheese | (t1 >= horizon))),
                "t_cheese": first(s["t_cheese"], at_cheese), "t_tr": first(s["t_tr"], (pos == tr).all(-1)),
                "t_region": first(s["t_region"], region[rows, pos[:, 0], pos[:, 1]]),
                "moves": s["moves"].at[rows, jnp.where(run, s["t"], horizon)].set(g.astype(jnp.int8), mode="drop")}

    return jax.lax.while_loop(lambda s: runnable(s)[0].any(), body, st)


@dataclass(frozen=True)
class RolloutConfig:
    horizon: int = TIMEOUT
    greedy: bool = False
    chunk: int = 1024  # mazes advanced together (memory ~ chunk x 1250 states x 5 floats)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.horizon <= TIMEOUT:
            raise ValueError(f"horizon must be in [1, {TIMEOUT}] (procgen's timeout), got {self.horizon}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")


@dataclass
class Rollouts:
    """Per-episode results (one episode per maze) and how they were produced."""

    episodes: Any  # pandas DataFrame, one row per maze (the tidy table)
    config: RolloutConfig
    stats: dict  # policy evaluations, wall time, mazes/s
    raw: dict = field(default_factory=dict, repr=False)  # engine outputs per played maze (+ "maze"): what shards save

    def summary(self) -> dict:
        from mazeagent.experiments.stats import proportion

        df = self.episodes
        out = {"n_mazes": int(len(df)), "config": vars(self.config), **self.stats, "horizons": {}}
        for h in HORIZONS:
            if h <= self.config.horizon:
                out["horizons"][str(h)] = {k: proportion(df[f"{k}_{h}"].to_numpy())
                                           for k in ("cheese", "top_right", "region", "neither")}
        return out

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"episodes": out / "episodes.csv", "summary": out / "rollouts.json"}
        self.episodes.to_csv(paths["episodes"], index=False)
        from mazeagent.experiments.report import _jsonable

        paths["summary"].write_text(json.dumps(_jsonable(self.summary()), indent=1))
        return paths


def _chunk(policy: Policy, mazes: Mazes, idx: np.ndarray, cfg: RolloutConfig, key: jax.Array, counters: dict,
           on_finished: Callable[[int], Any] = lambda n: None) -> dict:
    """Play the mazes ``idx``; the batch is padded (with finished dummy episodes) to few distinct sizes so the
    jitted loop compiles once per size."""
    n_real = len(idx)
    idx = pad_rows(idx, bucket(n_real, MIN_BATCH, cfg.chunk), fill="first")
    g = mazes.geometry
    M, W, H = len(idx), mazes.grid.shape[-1], cfg.horizon
    S = W * W * 2
    host_walls = mazes.batch.walls[idx]
    walls = jnp.asarray(host_walls)
    region = jnp.asarray(g.region[idx])
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(idx))
    frames = functools.cache(lambda: static_frames(mazes, idx))  # rendered only for policies that read frames
    logp, best, known_dev = jnp.zeros((M, S, 5), jnp.float32), jnp.zeros((M, S), jnp.int32), jnp.zeros((M, S), bool)
    known = np.zeros((M, S), bool)  # host copy, to pick which states to evaluate
    start = mazes.mouse[idx].astype(np.int32)
    st = {"pos": jnp.asarray(start), "ref": jnp.zeros(M, bool), "t": jnp.zeros(M, jnp.int32),
          "done": jnp.asarray(np.arange(M) >= n_real), "t_cheese": jnp.full(M, -1, jnp.int32),
          "t_tr": jnp.where(jnp.asarray((start == g.top_right[idx]).all(-1)), 0, -1).astype(jnp.int32),
          "t_region": jnp.where(region[jnp.arange(M), start[:, 0], start[:, 1]], 0, -1).astype(jnp.int32),
          "moves": jnp.full((M, H), -1, jnp.int8)}
    reported = 0
    while True:
        st = _advance(st, logp, best, known_dev, walls,
                      jnp.asarray(mazes.cheese[idx]), jnp.asarray(g.top_right[idx]), region, keys, H, cfg.greedy)
        pending = np.asarray(~st["done"] & (st["t"] < H))
        finished = int((~pending[:n_real]).sum())
        on_finished(finished - reported)  # progress per finished episode, not per chunk
        reported = finished
        if not pending.any():
            return {k: np.asarray(v)[:n_real] for k, v in st.items()}
        rows = np.nonzero(pending)[0]
        pos, ref = np.asarray(st["pos"])[rows], np.asarray(st["ref"])[rows]
        q_rows, q_pos, q_ref = _with_neighbours(rows, pos, ref, host_walls, known, W)
        sidx = (q_pos[:, 0] * W + q_pos[:, 1]) * 2 + q_ref
        lg, _ = evaluate(policy, mazes, idx[q_rows], q_pos, q_ref, key, frames=frames, frame_rows=q_rows)
        known[q_rows, sidx] = True
        lp = np.log(np.maximum(grouped_probs(lg), 1e-30)).astype(np.float32)
        new = (q_rows, sidx, lp, ACTION_TO_GROUP[np.argmax(lg, -1)])  # padded by repeats: idempotent scatters
        logp, best, known_dev = _fill(logp, best, known_dev,
                                      *(jnp.asarray(pad_to_bucket(a, MIN_BATCH, fill="last")) for a in new))
        counters["policy_evals"] += len(q_rows)


@functools.partial(jax.jit, donate_argnums=(0, 1, 2))
def _fill(logp, best, known, rows, sidx, lp, bg):
    """Write newly evaluated states into the device-resident tables in place (padding repeats the last entry)."""
    return logp.at[rows, sidx].set(lp), best.at[rows, sidx].set(bg), known.at[rows, sidx].set(True)


def _with_neighbours(rows, pos, ref, walls, known, W, fill_to: int | None = None):
    """The pending states first, then (to fill the padded policy batch) unknown states one move away."""
    M = len(rows)
    cap = fill_to or (bucket(M, MIN_BATCH, EVAL_BATCH) if M <= EVAL_BATCH else -(-M // EVAL_BATCH) * EVAL_BATCH)
    cand_r, cand_p, cand_f = [rows], [pos], [ref]
    for g in range(4):
        p2, f2 = move_host(walls[rows], pos, ref, np.full(M, g))
        cand_r.append(rows), cand_p.append(p2), cand_f.append(f2)
    r, p, f = np.concatenate(cand_r), np.concatenate(cand_p), np.concatenate(cand_f).astype(np.int64)
    sidx = (p[:, 0] * W + p[:, 1]) * 2 + f
    key = r * (W * W * 2) + sidx
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)  # keeps the pending states (listed first) ahead of neighbours
    first = first[~known[r[first], sidx[first]]]
    n_keep = max(M, min(cap, len(first)))
    first = first[:n_keep]
    return r[first], p[first].astype(np.int32), f[first].astype(bool)


def shard_indices(n: int, shard: int, shards: int) -> np.ndarray:
    """Maze indices of shard ``shard`` of ``shards``: contiguous blocks of ``range(n)`` in maze order. The maze set
    and each maze's sampling key depend on the maze index only, so the shards' union is the unsharded study."""
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or not 1 <= shards <= n:
        raise ValueError(f"number of shards must be an int in [1, {n}] (the number of mazes), got {shards!r}")
    if isinstance(shard, bool) or not isinstance(shard, (int, np.integer)) or not 0 <= shard < shards:
        raise ValueError(f"shard index must be an int in [0, {shards - 1}], got {shard!r}")
    return np.array_split(np.arange(n), shards)[shard]


def rollout(policy: Policy, mazes: Mazes, cfg: RolloutConfig = RolloutConfig(), progress: bool = True,
            indices: np.ndarray | None = None) -> Rollouts:
    """Play one episode per maze from its start and return the tidy per-episode table; ``indices`` plays only
    those mazes (e.g. :func:`shard_indices`), with exactly the episodes they have in the full rollout."""
    from tqdm.auto import tqdm

    order = np.arange(len(mazes)) if indices is None else np.asarray(indices, np.int64)
    if order.ndim != 1 or not len(order) or order.min() < 0 or order.max() >= len(mazes):
        raise ValueError(f"indices must be a non-empty 1-d array of maze indices in [0, {len(mazes)})")
    key = jax.random.PRNGKey(cfg.seed)  # per maze: fold_in(key, maze index), so chunking and sharding don't matter
    counters = {"policy_evals": 0}
    parts = []
    t0, c0 = time.perf_counter(), time.process_time()
    with tqdm(total=len(order), unit="maze", desc="rollouts", disable=not progress, smoothing=0) as bar:
        for s in range(0, len(order), cfg.chunk):
            parts.append(_chunk(policy, mazes, order[s:s + cfg.chunk], cfg, key, counters, bar.update))
    elapsed = time.perf_counter() - t0
    res = {"maze": order, **{k: np.concatenate([p[k] for p in parts]) for k in parts[0]}}
    stats = {"policy_evals": counters["policy_evals"], "seconds": elapsed, "cpu_seconds": time.process_time() - c0,
             "mazes_per_second": len(order) / max(elapsed, 1e-9),
             "evals_per_maze": counters["policy_evals"] / len(order)}
    return from_results(mazes, res, cfg, stats)


def from_results(mazes: Mazes, res: dict, cfg: RolloutConfig, stats: dict) -> Rollouts:
    """Rollouts from engine outputs ``res`` (arrays per played maze, ``res["maze"]`` = their indices), e.g. the
    merged shards of a study."""
    import pandas as pd

    return Rollouts(pd.DataFrame(episode_columns(mazes, res, cfg.horizon)), cfg, stats, raw=res)


def episode_columns(mazes: Mazes, res: dict, horizon: int) -> dict[str, np.ndarray]:
    """The tidy table: identity, squares (inner coordinates), every geometry factor, attainment per horizon; one
    row per maze in ``res["maze"]`` (default: all)."""
    g = mazes.geometry
    idx = np.asarray(res.get("maze", np.arange(len(mazes))))
    m = ((WORLD - mazes.size) // 2)[idx]
    cols: dict[str, Any] = {"maze": idx, "level_seed": mazes.seed[idx], "background": mazes.background[idx]}
    cols.update({k: np.asarray(v)[idx] for k, v in g.factors().items()})
    tr = g.top_right[idx]
    cols["top_right_row"] = cols["top_right_col"] = np.where(tr[:, 0] >= 0, tr[:, 0] - m, -1)
    for name, t in (("cheese", res["t_cheese"]), ("top_right", res["t_tr"]), ("region", res["t_region"])):
        cols[f"t_{name}"] = t
    cols["episode_length"] = res["t"]
    for h in HORIZONS:
        if h <= horizon:
            got = {n: (cols[f"t_{n}"] >= 0) & (cols[f"t_{n}"] <= h) for n in ("cheese", "top_right", "region")}
            for n, v in got.items():
                cols[f"{n}_{h}"] = v
            cols[f"neither_{h}"] = ~got["cheese"] & ~got["top_right"]
    chars = np.array(list(MOVE_CHARS + " "))
    mv = np.where(res["moves"] >= 0, res["moves"], 5)
    cols["actions"] = np.array(["".join(row).rstrip() for row in chars[mv]])
    return cols


def replay_moves(mazes: Mazes, idx: Any, actions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """World squares ``(B, T + 1, 2)`` and facings ``(B, T + 1)`` (start included) of mazes ``idx`` played by their
    ``actions`` strings together, ``T`` the longest; a shorter episode stands still after its end."""
    for a in actions:
        bad = [ch for ch in a if ch not in MOVE_CHARS]
        if bad:
            raise ValueError(f"actions may only hold {MOVE_CHARS!r}, got {bad[0]!r}")
    idx = np.asarray(idx)
    walls = mazes.batch.walls[idx]
    pos, ref = mazes.mouse[idx].astype(np.int32), np.zeros(len(idx), bool)
    squares, facing = [pos.copy()], [ref.copy()]
    for t in range(max((len(a) for a in actions), default=0)):
        pos, ref = move_host(walls, pos, ref, np.array([MOVE_CHARS.index(a[t]) if t < len(a) else NOOP
                                                        for a in actions]))
        squares.append(pos.copy())
        facing.append(ref.copy())
    return np.stack(squares, 1), np.stack(facing, 1)


def replay(mazes: Mazes, i: int, actions: str) -> np.ndarray:
    """World squares visited by episode ``i`` (start included) from its ``actions`` string."""
    return replay_moves(mazes, [i], [actions])[0][0]
