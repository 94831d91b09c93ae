"""Pictures of a level for people: an ASCII maze for terminals and logs, and a PNG (matplotlib, headless).

Both mark the mouse, the cheese, the decision square, the top-right free square and the top-right region, and can
draw the shortest paths from the mouse; the top row is printed first (y up, as the observation shows it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mazeagent.maze.geometry import MazeGeometry, analyse
from mazeagent.maze.landmarks import margins
from mazeagent.maze.level import Level, LevelBatch

# symbol -> meaning, in drawing priority (earlier wins on a square)
LEGEND = {
    "M": "mouse",
    "C": "cheese",
    "D": "decision square",
    "T": "top-right free square",
    "*": "on both shortest paths (mouse -> cheese and mouse -> top-right)",
    "c": "on the shortest path to the cheese only",
    "t": "on the shortest path to the top-right square only",
    ".": "open square in the top-right region",
    "#": "wall",
}


def _marks(level: Level, region_size: int, paths: bool, variant: str) -> tuple[np.ndarray, MazeGeometry]:
    """(n, n) array of one-character marks (inner coordinates) and the level's geometry."""
    batch = LevelBatch.stack([level])
    geo = analyse(batch, region_size)
    m, n = int(margins(batch)[0]), level.size
    inner = slice(m, m + n)
    marks = np.where(level.walls, "#", " ").astype("<U1")
    marks[geo.region[0, inner, inner]] = "."
    if paths:
        cp, tp = geo.cheese_path[0, inner, inner], geo.top_right_path[0, inner, inner]
        marks[cp & ~tp], marks[tp & ~cp], marks[cp & tp] = "c", "t", "*"
    points = [("T", geo.top_right[0]), ("D", geo.decision(variant)[0]), ("C", batch.cheese[0]), ("M", batch.mouse[0])]
    for ch, (r, c) in points:  # later wins: the mouse is always visible
        if r >= 0:
            marks[r - m, c - m] = ch
    return marks, geo


def ascii_maze(level: Level, *, region_size: int = 5, paths: bool = False, variant: str = "canonical",
               legend: bool = True) -> str:
    """The level as text: two characters per square, top row first, inner row numbers left, columns below."""
    marks, _ = _marks(level, region_size, paths, variant)
    n = level.size
    wall_row = "   " + "##" * (n + 2)
    lines = [wall_row]
    for r in range(n - 1, -1, -1):
        cells = "".join("##" if ch == "#" else ch + " " for ch in marks[r])
        lines.append(f"{r:>2} ##{cells}##")
    lines += [wall_row, "     " + "".join(f"{c % 10} " for c in range(n)).rstrip()]
    if legend:
        used = set(marks.ravel())
        lines.append("legend: " + "; ".join(f"{k} {v}" for k, v in LEGEND.items() if k in used)
                     + f"  (region = top-right {region_size}x{region_size}; rows are inner y, 0 = bottom)")
    return "\n".join(lines)


def save_png(level: Level, path: str | Path, *, region_size: int = 5, paths: bool = True,
             variant: str = "canonical", title: str | None = None, dpi: int = 100) -> Path:
    """Write a PNG of the level (y up) with the landmarks, region outline and paths; returns the path."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"PNG output path must end in .png, got {str(path)!r}")
    marks, geo = _marks(level, region_size, False, variant)
    n, m = level.size, int(margins(geo.batch)[0])
    img = np.where(level.walls, 0.15, 0.95)[..., None].repeat(3, axis=2)
    img[marks == "."] = (0.85, 0.93, 0.85)
    fig = Figure(figsize=(6.5, 6), dpi=dpi)
    ax = fig.add_subplot()
    ax.imshow(img, origin="lower", extent=(-0.5, n - 0.5, -0.5, n - 0.5), interpolation="nearest")
    lo = max(n - region_size, 0) - 0.5
    ax.add_patch(Rectangle((lo, lo), n - 0.5 - lo, n - 0.5 - lo, fill=False, ec="green", lw=2, ls="--",
                           label=f"top-right {region_size}x{region_size} region"))
    if paths:
        for mask, colour, name in ((geo.top_right_path, "tab:green", "path to top-right"),
                                   (geo.cheese_path, "tab:orange", "path to cheese")):
            sq = np.argwhere(mask[0])
            if len(sq):
                sq = sq[np.argsort(geo.dist_mouse[0][tuple(sq.T)])] - m
                ax.plot(sq[:, 1], sq[:, 0], color=colour, lw=2.5, alpha=0.8, label=name)
    style = {"T": ("s", "none", "green", "top-right square"), "D": ("X", "red", "red", "decision square"),
             "C": ("*", "gold", "black", "cheese"), "M": ("o", "tab:blue", "black", "mouse")}
    for ch, (marker, face, edge, name) in style.items():
        for r, c in np.argwhere(marks == ch):
            ax.plot(c, r, marker=marker, ms=14 if ch != "T" else 18, mfc=face, mec=edge, mew=2, ls="", label=name)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.tick_params(labelsize=6)
    ax.set_xlabel("inner col (x)")
    ax.set_ylabel("inner row (y, up)")
    ax.set_title(title or f"maze {n}x{n}" + (f", seed {level.seed}" if level.seed is not None else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, markerscale=0.6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
