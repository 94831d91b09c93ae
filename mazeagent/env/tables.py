"""Render tables for the bit-exact 64x64 maze observation, built from the PNG assets procgen ships
(docs/maze-spec.md §5).

Why tables: procgen draws walls and cheese 0.02 cells larger than their cell (``RENDER_EPS``), so some pixels are
covered by 2 or 4 cell rects and the draw order decides the result (docs/maze-spec.md §5.3). Rather than emulate
``QPainter`` at run time, we precompute, once per distribution mode:

* ``background`` (9, 64, 64, 3) uint8: each background image as Qt samples it into the 64x64 canvas;
* ``cover`` (64, 64, 4) int32: flat world indices ``row * W + col`` of the cells whose grown rect covers a pixel, in
  procgen's draw order (x outer, y inner), -1 padded;
* ``texels`` (2, 64, 64, 4, 4) uint8: premultiplied RGBA of the wall (0) / cheese (1) sprite drawn in cover slot k's
  cell, at this pixel;
* ``mouse`` (2, 64, 64, 4) uint8: premultiplied RGBA of the (unreflected, reflected) mouse drawn in the pixel's own
  cell;
* ``own_row`` / ``own_col`` (64,) int32: the world row / col whose exact (un-grown) rect holds each pixel row / col.

The geometry is procgen's float32 arithmetic (``prepare_for_drawing``, ``get_screen_rect``); the sampling is Qt 5's
nearest-neighbour ``qt_scale_image_32bit`` index arithmetic; sprites are premultiplied like ``qPremultiply``
(docs/maze-spec.md §5.2-§5.4). ``python -m mazeagent.env.tables`` writes
``mazeagent/assets/render_tables_{hard,easy}.npz``, which are committed so the env runs where procgen is not
installed; a test checks they equal a fresh build.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np

OBS = 64
RENDER_EPS = 0.02
WORLD_DIM = {"hard": 25, "easy": 15}
WALL_PNG = "kenney/Ground/Sand/sandCenter.png"
CHEESE_PNG = "misc_assets/cheese.png"
MOUSE_PNG = "kenney/Enemies/mouse_move.png"
BACKGROUND_PNGS = tuple(f"topdown_backgrounds/{name}.png"
                        for name in ["floortiles"] + [f"backgrounddetailed{i}" for i in range(1, 9)])
ASSET_DIR = Path(__file__).resolve().parent.parent / "assets"
TABLE_KEYS = ("background", "cover", "texels", "mouse", "own_row", "own_col")


def check_mode(distribution_mode: str) -> int:
    """World size for a distribution mode; a clear error for modes the renderer does not model."""
    if distribution_mode not in WORLD_DIM:
        raise ValueError(f"distribution_mode must be one of {sorted(WORLD_DIM)} (memory/exploration are not "
                         f"rendered), got {distribution_mode!r}")
    return WORLD_DIM[distribution_mode]


def table_path(distribution_mode: str) -> Path:
    check_mode(distribution_mode)
    return ASSET_DIR / f"render_tables_{distribution_mode}.npz"


# ------------------------------------------------------------- procgen's float32 geometry (docs/maze-spec.md §5.2)

def _geometry(world: int) -> tuple[np.float32, np.float32, np.float32]:
    """(unit, view_dim, offset) exactly as ``prepare_for_drawing`` computes them in float32, center_agent off."""
    f = np.float32
    raw_unit = f(OBS) / f(world)
    unit = f(np.float64(raw_unit) * (OBS / 64.0))
    view_dim = f(64.0 / np.float64(raw_unit))
    offset = f(unit * f(f(world * 0.5) - f(view_dim / f(2))))  # x_off == y_off; 2e-6 in easy mode
    return unit, view_dim, offset


def screen_rect(world: int, x: float, y: float, dx: float, dy: float, eps: float = 0.0
                ) -> tuple[float, float, float, float]:
    """``get_screen_rect``: (left, top, width, height), computed in float32 then widened to double as Qt gets it."""
    f = np.float32
    unit, view_dim, offset = _geometry(world)
    e = f(eps)
    left = f(f(f(x) - e) * unit - offset)
    top = f(f(f(view_dim - f(y)) - e) * unit + offset)
    width = f(f(f(dx) + f(2) * e) * unit)
    height = f(f(f(dy) + f(2) * e) * unit)
    return float(left), float(top), float(width), float(height)


def _qround(d: float) -> int:
    """Qt's qRound: round half away from zero."""
    return int(math.floor(d + 0.5)) if d >= 0 else -int(math.floor(-d + 0.5))


def axis_samples(start: float, length: float, n_src: int, clip: int = OBS) -> dict[int, int]:
    """Target pixel -> source texel along one axis, Qt 5 ``qt_scale_image_32bit`` nearest-neighbour arithmetic.

    Qt 6 computes ``ix`` differently and would change ~30 mouse texels; procgen 0.10.7's builds use Qt 5
    (docs/maze-spec.md §5.4).
    """
    tx1, tx2 = max(_qround(start), 0), min(_qround(start + length), clip)
    if tx1 >= tx2:
        return {}
    ix = int(65536.0 / (length / n_src))
    base = (math.ceil((tx1 + 0.5 - start) * ix) - 1) & 0xFFFFFFFF
    w = tx2 - tx1
    if ((base + ix * (w - 1)) & 0xFFFFFFFF) >> 16 >= n_src:  # Qt's "one pixel too large" guard
        w -= 1
    return {tx1 + i: ((base + ix * i) & 0xFFFFFFFF) >> 16 for i in range(w)}


def cell_spans(world: int, eps: float) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Half-open pixel spans [lo, hi) of every cell's rect: columns of x = k and rows of y = k (rows are mirrored)."""
    cols, rows = [], []
    for k in range(world):
        left, top, width, height = screen_rect(world, k, k + 1, 1, 1, eps)
        cols.append((max(_qround(left), 0), min(_qround(left + width), OBS)))
        rows.append((max(_qround(top), 0), min(_qround(top + height), OBS)))
    return cols, rows


# ---------------------------------------------------------------- assets

def procgen_asset_dir() -> Path:
    """The ``data/assets`` folder of the installed procgen package, found without importing (and loading) it."""
    spec = importlib.util.find_spec("procgen")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("building render tables needs the procgen package (pip install procgen-mirror==0.10.7); "
                         "the committed tables in mazeagent/assets/ do not")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "assets"


def _premultiply(rgba: np.ndarray) -> np.ndarray:
    """``qPremultiply`` per channel: c' = (c*a + ((c*a) >> 8) + 0x80) >> 8."""
    a = rgba[..., 3:4].astype(np.int64)
    t = rgba[..., :3].astype(np.int64) * a
    return np.concatenate([(t + (t >> 8) + 0x80) >> 8, a], axis=-1).astype(np.uint8)


def _load_png(asset_dir: Path, rel: str, mode: str) -> np.ndarray:
    from PIL import Image
    with Image.open(asset_dir / rel) as im:
        return np.asarray(im.convert(mode))


# ---------------------------------------------------------------- table construction

def _cover(world: int) -> np.ndarray:
    cols, rows = cell_spans(world, RENDER_EPS)
    cover = np.full((OBS, OBS, 4), -1, dtype=np.int32)
    count = np.zeros((OBS, OBS), dtype=np.int32)
    for x in range(world):  # procgen's draw order: x outer, y inner (basic-abstract-game.cpp:941-955)
        for y in range(world):
            for r in range(*rows[y]):
                for c in range(*cols[x]):
                    cover[r, c, count[r, c]] = y * world + x  # flat index of grid[row=y, col=x]
                    count[r, c] += 1
    return cover


def _own(world: int) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = cell_spans(world, 0.0)
    own_row, own_col = np.full(OBS, -1, np.int32), np.full(OBS, -1, np.int32)
    for k in range(world):
        own_col[cols[k][0]:cols[k][1]] = k
        own_row[rows[k][0]:rows[k][1]] = k
    if (own_row < 0).any() or (own_col < 0).any():
        raise AssertionError("exact cell rects must partition the 64 pixels")  # geometry invariant
    return own_row, own_col


def build_tables(distribution_mode: str = "hard", asset_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Compute every render table for one mode from procgen's PNG assets (a second or two of numpy)."""
    world = check_mode(distribution_mode)
    asset_dir = Path(asset_dir) if asset_dir is not None else procgen_asset_dir()
    cover = _cover(world)
    own_row, own_col = _own(world)

    sprites = [_premultiply(_load_png(asset_dir, rel, "RGBA")) for rel in (WALL_PNG, CHEESE_PNG)]
    texels = np.zeros((2, OBS, OBS, 4, 4), np.uint8)
    for s, img in enumerate(sprites):
        for x in range(world):
            for y in range(world):
                left, top, size, _ = screen_rect(world, x, y + 1, 1, 1, RENDER_EPS)
                rows = axis_samples(top, size, img.shape[0])
                cols = axis_samples(left, size, img.shape[1])
                for r, sr in rows.items():
                    for c, sc in cols.items():
                        slot = int(np.nonzero(cover[r, c] == y * world + x)[0][0])
                        texels[s, r, c, slot] = img[sr, sc]

    mouse_img = _premultiply(_load_png(asset_dir, MOUSE_PNG, "RGBA"))
    mouse = np.zeros((2, OBS, OBS, 4), np.uint8)
    for refl, img in enumerate((mouse_img, mouse_img[:, ::-1])):  # QImage::mirrored(true, false)
        for x in range(world):
            for y in range(world):
                left, top, size, _ = screen_rect(world, x, y + 1, 1, 1, 0.0)  # the mouse's rect is not grown
                for r, sr in axis_samples(top, size, img.shape[0]).items():
                    for c, sc in axis_samples(left, size, img.shape[1]).items():
                        mouse[refl, r, c] = img[sr, sc]

    background = np.zeros((len(BACKGROUND_PNGS), OBS, OBS, 3), np.uint8)
    left, top, size, _ = screen_rect(world, 0, world, world, world, 0.0)  # bg rect == main rect (square images)
    for b, rel in enumerate(BACKGROUND_PNGS):
        img = _load_png(asset_dir, rel, "RGB")
        rows, cols = axis_samples(top, size, img.shape[0]), axis_samples(left, size, img.shape[1])
        if len(rows) != OBS or len(cols) != OBS:
            raise AssertionError(f"background {rel} does not cover the canvas")  # geometry invariant
        background[b] = img[np.array([rows[i] for i in range(OBS)])[:, None], np.array([cols[i] for i in range(OBS)])]
    return {"background": background, "cover": cover, "texels": texels, "mouse": mouse,
            "own_row": own_row, "own_col": own_col}


def asset_digest(asset_dir: Path | None = None) -> str:
    """sha256 over the PNGs the tables come from, recorded in the .npz for provenance."""
    asset_dir = Path(asset_dir) if asset_dir is not None else procgen_asset_dir()
    h = hashlib.sha256()
    for rel in (WALL_PNG, CHEESE_PNG, MOUSE_PNG) + BACKGROUND_PNGS:
        h.update(rel.encode())
        h.update((asset_dir / rel).read_bytes())
    return h.hexdigest()


def load_table_arrays(distribution_mode: str = "hard") -> dict[str, np.ndarray]:
    """The committed tables as numpy arrays (no procgen needed)."""
    path = table_path(distribution_mode)
    if not path.exists():
        raise ValueError(f"render tables {path} are missing; run `python -m mazeagent.env.tables` "
                         "(needs procgen installed)")
    with np.load(path) as z:
        return {k: z[k] for k in TABLE_KEYS}


def write_tables(out_dir: Path = ASSET_DIR, modes: tuple[str, ...] = ("hard", "easy")) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = asset_digest()
    paths = []
    for mode in modes:
        path = out_dir / f"render_tables_{mode}.npz"
        np.savez_compressed(path, world=np.int32(WORLD_DIM[mode]), assets_sha256=np.str_(digest),
                            **build_tables(mode))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the maze render tables from procgen's PNG assets.")
    parser.add_argument("--out", type=Path, default=ASSET_DIR, help="output folder (default: mazeagent/assets)")
    parser.add_argument("--mode", choices=sorted(WORLD_DIM), action="append",
                        help="distribution mode(s) to build (default: hard and easy)")
    args = parser.parse_args(argv)
    for path in write_tables(args.out, tuple(args.mode or ("hard", "easy"))):
        print(path)


if __name__ == "__main__":
    main()
