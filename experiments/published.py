"""Published numbers beside ours: the one loader of ``published.toml`` and the one table that shows them.

Why a data file: the numbers come from posts and notebooks, not from code, and every report section with a
published counterpart must show the same value with its source and what differs (agent, seeds, horizon). Keeping
them in one place, with sources, stops them drifting apart between sections, the scorecard and the docs.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mazeagent.experiments.stats import fmt

PATH = Path(__file__).with_name("published.toml")


@dataclass(frozen=True)
class Published:
    key: str
    quantity: str
    value: str  # as published, short text
    source: str
    setup: str  # the published run: agent, seeds, horizon, method
    note: str = ""
    number: float | None = None
    predictions: tuple[str, ...] = ()


@functools.cache
def load(path: Path = PATH) -> dict[str, Published]:
    """Every published quantity by key, in file order; ValueError naming a malformed entry."""
    data = tomllib.loads(Path(path).read_text())
    out = {}
    for key, d in data.items():
        missing = {"quantity", "value", "source", "setup"} - set(d)
        if missing:
            raise ValueError(f"{path}: [{key}] lacks {sorted(missing)}")
        out[key] = Published(key=key, quantity=d["quantity"], value=d["value"], source=d["source"],
                             setup=d["setup"], note=d.get("note", ""), number=d.get("number"),
                             predictions=tuple(d.get("predictions", ())))
    return out


def get(key: str) -> Published:
    entries = load()
    if key not in entries:
        raise KeyError(f"no published quantity {key!r} in {PATH.name}; have {sorted(entries)}")
    return entries[key]


def for_prediction(pid: str) -> Published | None:
    """The scorecard's published counterpart of prediction ``pid``: the first entry that lists it."""
    return next((p for p in load().values() if pid in p.predictions), None)


def our_setup(meta: dict) -> str:
    """Our run in the words of the 'setup' field, from a report's meta (study or probes)."""
    parts = [str(meta.get("checkpoint", "this checkpoint"))]
    if "mazes" in meta:
        parts.append(f"{meta['mazes']} random stock mazes (seed {meta.get('seed', 0)})")
    if "greedy" in meta:
        parts.append("argmax actions" if meta["greedy"] else "sampled actions")
    return "; ".join(parts)


def compare(section: Any, meta: dict, rows: list[tuple[str, Any, str]]) -> None:
    """Append to ``section`` the table of published counterparts: one row per ``(key, our value, what ours is)``,
    with the source and what differs; the published entries also go to the section's results."""
    table, res = [], section.results.setdefault("published", {})
    for key, ours, detail in rows:
        p = get(key)
        differs = f"Published: {p.setup}. Ours: {our_setup(meta)}; {detail}." + (f" Note: {p.note}." if p.note else "")
        table.append([p.quantity, fmt(ours), p.value, p.source, differs])
        res[key] = {"ours": ours, "published": p.value, "number": p.number, "source": p.source, "differs": differs}
    section.table(["Quantity", "Ours", "Published", "Source", "What differs"], table,
                  caption="Published counterparts")
