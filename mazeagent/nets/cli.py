"""``mazeagent import-torch``, ``export-torch`` and ``pth-info``: published PyTorch agents <-> suite checkpoints."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-torch", help="convert a published PyTorch .pth agent into a suite checkpoint",
        description="Read a train-procgen-pytorch / procgen-tools .pth ({'model_state_dict', ...} or a bare state "
                    "dict) without executing pickled code, infer the scale, and write a suite checkpoint that "
                    "eval, experiments and probes load. The recorded config is --preset plus --set overrides "
                    "(rand_region is taken from a *rand_region_<r>.pth name unless set).")
    p.add_argument("file", help="the .pth checkpoint")
    p.add_argument("--out", required=True, help="new or empty directory for the checkpoint")
    p.add_argument("--preset", default="paper", help="config recorded with the weights (default: paper)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override a recorded config key, e.g. --set rand_region=none (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="seed recorded in the config (for later eval/fine-tuning)")
    p.set_defaults(func=_import)

    p = subparsers.add_parser("export-torch", help="write a suite checkpoint as a procgen-tools .pth",
                              description="Write {'model_state_dict': ...} loadable by procgen-tools' load_policy "
                                          "and torch.load(weights_only=True); torch is not needed.")
    p.add_argument("--checkpoint", required=True, help="run directory, checkpoints/ directory, step_* directory or published .pth file")
    p.add_argument("--step", type=int, default=None, help="which saved step (default: newest)")
    p.add_argument("--out", required=True, help="the .pth file to write")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=_export)

    p = subparsers.add_parser("pth-info", help="recognise a .pth file: published name, scale, sha256",
                              description="Read a .pth without executing pickled code, infer its scale, hash it, and "
                                          "match it against the table of published maze agents (docs/agents.md).")
    p.add_argument("file", help="the .pth checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON instead of a sentence")
    p.set_defaults(func=_info)


def _import(args: argparse.Namespace) -> int:
    from mazeagent.ppo.pth import import_torch

    where = import_torch(args.file, args.out, preset=args.preset, overrides=args.overrides, seed=args.seed)
    print(f"wrote {where}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from mazeagent.ppo.pth import export_torch

    print(f"wrote {export_torch(args.checkpoint, args.out, step=args.step, force=args.force)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from mazeagent.ppo.pth import recognise

    r = recognise(args.file)
    if args.json:
        print(json.dumps({**dataclasses.asdict(r), "description": r.describe()}))
    else:
        print(f"{r.describe()}\nsha256 {r.sha256}")
    return 0
