"""`mazeagent maze show|stats`: look at a procgen level, and dump the geometry factors of many levels."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from mazeagent.maze.geometry import DECISION_VARIANTS, PREDICTION_FACTORS

CHUNK = 1024  # levels per generate/analyse step (matches levelgen's compiled chunk)


def parse_seeds(text: str) -> np.ndarray:
    """``A:B`` (half-open range), ``A`` or ``A,B,C`` -> int64 array of level seeds."""
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
            if hi <= lo:
                raise ValueError(f"empty seed range {text!r}: need A < B in A:B (B is excluded)")
            return np.arange(lo, hi, dtype=np.int64)
        return np.array([int(v) for v in text.split(",")], dtype=np.int64)
    except ValueError as e:
        if "empty seed range" in str(e):
            raise
        raise ValueError(f"--seeds must be A:B (half-open), A, or A,B,C with integers, got {text!r}") from None


def _seeds_arg(text: str) -> np.ndarray:
    try:
        return parse_seeds(text)
    except ValueError as e:  # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(e)) from None


def _json_value(v: float):
    if math.isnan(v):
        return None
    return int(v) if float(v).is_integer() else round(float(v), 6)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rand-region", type=int, default=None, metavar="R",
                   help="cheese in the top-right RxR block as procgenAISC maze_aisc (0 = exact corner); "
                        "default: stock procgen maze (cheese anywhere)")
    p.add_argument("--region-size", type=int, default=5, metavar="K",
                   help="side of the top-right region used by the region factors (default 5)")


def register(sub) -> None:
    maze = sub.add_parser("maze", help="maze levels: ASCII/PNG pictures and geometry factors")
    msub = maze.add_subparsers(dest="maze_command", metavar="MAZE")
    msub.required = True

    show = msub.add_parser("show", help="print a level as ASCII (mouse, cheese, decision square, top-right region)")
    show.add_argument("--seed", type=int, required=True, help="procgen level seed")
    _common(show)
    show.add_argument("--png", default=None, metavar="OUT.png", help="also write a PNG picture")
    show.add_argument("--paths", action="store_true", help="mark the shortest paths to the cheese and top-right")
    show.add_argument("--variant", choices=DECISION_VARIANTS, default="canonical",
                      help="decision-square definition (default: canonical)")
    show.set_defaults(func=_show)

    stats = msub.add_parser("stats", help="geometry factors (F1-F10, B2, ...) of many levels")
    stats.add_argument("--seeds", required=True, type=_seeds_arg, metavar="A:B",
                       help="level seeds: A:B (half-open), A, or A,B,C")
    _common(stats)
    stats.add_argument("--json", action="store_true", help="one JSON object per level (JSON lines) on stdout")
    stats.set_defaults(func=_stats)


def _show(args: argparse.Namespace) -> int:
    from mazeagent.env.levelgen import generate_batch
    from mazeagent.maze.draw import ascii_maze, save_png
    from mazeagent.maze.geometry import factors
    from mazeagent.maze.level import LevelBatch

    level = generate_batch(np.array([args.seed]), rand_region=args.rand_region).levels()[0]
    f = {k: v[0] for k, v in factors(LevelBatch.stack([level]), args.region_size).items()}
    dist = "stock maze" if args.rand_region is None else f"rand_region={args.rand_region}"
    print(f"seed {args.seed} ({dist}): {level.size}x{level.size}, mouse {level.mouse}, cheese {level.cheese}")
    print(ascii_maze(level, region_size=args.region_size, paths=args.paths, variant=args.variant))
    if math.isnan(f["decision_square_row"]):
        print("no decision square (one target lies on the way to the other)")
    else:
        print(f"decision square ({int(f['decision_square_row'])}, {int(f['decision_square_col'])})")
    shown = [(fid, name) for fid, name in PREDICTION_FACTORS.items()]
    shown += [("", k) for k in ("steps_mouse_cheese", "cheese_path_divergence", "cheese_up_right_reachable",
                                "euclid_cheese_top_right_quadrant")]
    for fid, name in shown:
        value = _json_value(f[name])
        print(f"  {fid:>3} {name:<42} {'n/a' if value is None else value}")
    if args.png:
        print(f"wrote {save_png(level, args.png, region_size=args.region_size, variant=args.variant)}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mazeagent.env.levelgen import generate_batch
    from mazeagent.maze.geometry import factors

    if args.region_size < 1:
        raise ValueError(f"--region-size must be >= 1, got {args.region_size}")
    t0 = time.perf_counter()
    seeds = args.seeds
    summary: dict[str, list] = {}  # factor -> [count, sum, min, max] over defined values, streamed chunk by chunk
    for start in tqdm(range(0, len(seeds), CHUNK), desc="levels", unit="chunk", leave=False, file=sys.stderr):
        gen = generate_batch(seeds[start:start + CHUNK], rand_region=args.rand_region)
        f = factors(gen.batch(), args.region_size)
        if args.json:
            for i, seed in enumerate(gen.seed):
                row = {"seed": int(seed), "rand_region": args.rand_region, "region_size": args.region_size}
                row.update({k: _json_value(v[i]) for k, v in f.items()})
                print(json.dumps(row))
            continue
        for k, v in f.items():
            ok = v[~np.isnan(v)]
            acc = summary.setdefault(k, [0, 0.0, np.inf, -np.inf])
            if len(ok):
                acc[:] = [acc[0] + len(ok), acc[1] + ok.sum(), min(acc[2], ok.min()), max(acc[3], ok.max())]
    if not args.json:
        ids = {v: k for k, v in PREDICTION_FACTORS.items()}
        print(f"{len(seeds)} levels ({'stock' if args.rand_region is None else f'rand_region={args.rand_region}'})")
        print(f"{'factor':<46}{'defined':>8}{'mean':>10}{'min':>8}{'max':>8}")
        for k, (n, total, lo, hi) in summary.items():
            stats = f"{total / n:>10.3f}{lo:>8.2f}{hi:>8.2f}" if n else f"{'-':>10}{'-':>8}{'-':>8}"
            print(f"{(f'{k} ({ids[k]})' if k in ids else k):<46}{n:>8}{stats}")
    print(f"maze stats: {len(seeds)} levels in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return 0
