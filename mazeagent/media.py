"""Rollouts as media for people and wandb: an animated GIF of the frames and a still of the path taken.

Why GIF: wandb logs a ``.gif`` file as a video as is (``wandb.Video(path, format="gif")``), so no video encoder
(moviepy, ffmpeg) is needed on a cluster node, and the same file plays in a browser, a notebook or a report.
GIF frames have at most 256 colours: an episode whose frames use <= 256 colours in all (``use_backgrounds=False``)
is stored exactly; with procgen's textured backgrounds (~300-1500 colours) one palette is fitted to the episode
(no flicker), which posterises the texture slightly: ~1 of 255 mean error per channel on real episodes. GIF merges
identical consecutive frames (the mouse bumping into a wall) into one longer frame; :func:`read_gif` expands them,
so it returns one frame per env step.

Only pure writing lives here; training evaluations record episodes in :mod:`mazeagent.ppo.record`, the study
replays its own (``experiments/study.py``). Both end in :func:`episode_media`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mazeagent.maze.level import OBS

GIF_SCALE = 4  # 64 px observations shown at 256 px
FRAME_MS = 100  # 10 env steps per second; GIF delays are in 10 ms units
_MAX_COLOURS = 256
_COMMENT = "mazeagent frame_ms="  # GIF merges repeated frames; the comment keeps the time of one env step


@dataclass(frozen=True)
class Episode:
    """One episode as the agent saw it: ``frames`` (T, 64, 64, 3) uint8, the observation before each action;
    ``squares`` (T + 1, 2) world ``(row, col)`` of the mouse in each frame and after the last move; ``world`` the
    world grid's side (25 hard, 15 easy); and how it ended."""

    frames: np.ndarray
    squares: np.ndarray
    reflected: np.ndarray  # (len(squares),) bool: the mouse faces right
    world: int
    cheese: bool
    label: str = ""
    grid: np.ndarray | None = None  # (world, world) procgen codes of the level played (cheese included)

    @property
    def steps(self) -> int:
        return len(self.frames)


# ---- files -----------------------------------------------------------------------------------------------------
def _check_frames(frames: Any, any_size: bool = False) -> np.ndarray:
    """Observations (T, 64, 64, 3) uint8, or with ``any_size`` any (T, H, W, 3) uint8 (e.g. two side by side)."""
    frames = np.asarray(frames)
    ok = frames.ndim == 4 and frames.shape[-1] == 3 and (any_size or frames.shape[1:3] == (OBS, OBS))
    if not ok or frames.dtype != np.uint8 or not len(frames) or not frames.shape[1] or not frames.shape[2]:
        want = "(T, H, W, 3)" if any_size else f"(T, {OBS}, {OBS}, 3)"
        raise ValueError(f"frames must be a non-empty uint8 array {want}, got {frames.dtype} {frames.shape}")
    return frames


def _palette(frames: np.ndarray) -> tuple[np.ndarray, Any]:
    """(indices (T, H, W) uint8, palette image): exact if the episode has <= 256 colours, else fitted."""
    from PIL import Image

    rgb = frames.astype(np.uint32)
    codes, inverse = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], return_inverse=True)
    if len(codes) <= _MAX_COLOURS:
        colours = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1).astype(np.uint8)
        pal = Image.new("P", (1, 1))
        pal.putpalette(colours.ravel().tolist())
        return inverse.reshape(frames.shape[:3]).astype(np.uint8), pal
    # one palette for the whole episode (no flicker): fitted to a mosaic of up to 8 frames, first and last included
    pick = np.unique(np.linspace(0, len(frames) - 1, min(8, len(frames))).astype(int))
    pal = Image.fromarray(np.concatenate(frames[pick], axis=0)).quantize(_MAX_COLOURS, Image.Quantize.MEDIANCUT)
    idx = [np.asarray(Image.fromarray(f).quantize(palette=pal, dither=Image.Dither.NONE)) for f in frames]
    return np.stack(idx), pal


def save_gif(frames: Any, path: str | Path, scale: int = GIF_SCALE, frame_ms: int = FRAME_MS) -> Path:
    """Write (T, H, W, 3) uint8 frames (observations, or several side by side) as a looping GIF, each pixel a
    ``scale x scale`` block; returns the path."""
    from PIL import Image

    frames = _check_frames(frames, any_size=True)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"GIF output path must end in .gif, got {str(path)!r}")
    if isinstance(frame_ms, bool) or not isinstance(frame_ms, int) or frame_ms < 10 or frame_ms % 10:
        raise ValueError(f"frame_ms must be a positive multiple of 10 (GIF delays are centiseconds), got {frame_ms!r}")
    idx, pal = _palette(frames)
    idx = idx.repeat(scale, axis=1).repeat(scale, axis=2)  # human_view's upscale, on palette indices
    images = []
    for f in idx:
        im = Image.fromarray(f)  # "L"; putpalette makes it "P"
        im.putpalette(pal.getpalette())
        images.append(im)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0, optimize=False,
                   comment=f"{_COMMENT}{frame_ms}")
    return path


def read_gif(path: str | Path) -> tuple[np.ndarray, int]:
    """``(frames (T, H, W, 3) uint8, frame_ms)`` of a GIF written by :func:`save_gif`, with merged identical frames
    expanded again (one frame per ``frame_ms``)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        comment = im.info.get("comment", b"").decode("ascii", "replace")
        decoded = [(np.asarray(f.convert("RGB")), int(f.info.get("duration", 0))) for f in ImageSequence.Iterator(im)]
    if not comment.startswith(_COMMENT):
        raise ValueError(f"{path} was not written by mazeagent.media.save_gif (no frame time in its comment)")
    unit = int(comment[len(_COMMENT):])
    frames = [f for f, d in decoded for _ in range(max(1, round(d / unit)))]
    return np.stack(frames), unit


def square_centres(squares: Any, world: int, scale: int = 1) -> np.ndarray:
    """(N, 2) pixel ``(x, y)`` (x right, y down, image order) of world squares' centres in a ``scale``-upscaled
    observation; row 0 is the bottom world row (mazeagent.maze.level)."""
    sq = np.asarray(squares, dtype=np.float64).reshape(-1, 2)
    cell = OBS * scale / world
    return np.stack([(sq[:, 1] + 0.5) * cell, (world - 1 - sq[:, 0] + 0.5) * cell], axis=1)


def save_path_image(episode: Episode, path: str | Path, scale: int = GIF_SCALE) -> Path:
    """The episode's first frame with the path the mouse took drawn over it (start: white ring, end: red dot)."""
    from PIL import Image, ImageDraw

    from mazeagent.env.render import human_view

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"PNG output path must end in .png, got {str(path)!r}")
    img = Image.fromarray(human_view(_check_frames(episode.frames[:1]), scale)[0])
    pts = [tuple(p) for p in square_centres(episode.squares, episode.world, scale)]
    draw = ImageDraw.Draw(img)
    w = max(1, round(OBS * scale / episode.world / 4))
    if len(pts) > 1:
        draw.line(pts, fill=(255, 140, 0), width=w, joint="curve")
    r = 1.5 * w
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), outline=(255, 255, 255), width=max(1, w // 2))
    draw.ellipse((x1 - r, y1 - r, x1 + r, y1 + r), fill=(220, 30, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def episode_media(episodes: list[Episode], out_dir: str | Path, prefix: str) -> dict[str, Any]:
    """Write ``<prefix>_<i>.gif`` and ``<prefix>_<i>_path.png`` per episode into ``out_dir`` and return them as
    ``{"<prefix>/<i>/video": wandb.Video, "<prefix>/<i>/path": wandb.Image}`` for ``run.log``."""
    import wandb

    out, log = Path(out_dir), {}
    name = prefix.replace("/", "_")
    for i, ep in enumerate(episodes):
        ending = "got the cheese" if ep.cheese else "no cheese"
        caption = f"{ep.label + ': ' if ep.label else ''}{ep.steps} steps, {ending}"
        gif = save_gif(ep.frames, out / f"{name}_{i}.gif")
        png = save_path_image(ep, out / f"{name}_{i}_path.png")
        log[f"{prefix}/{i}/video"] = wandb.Video(str(gif), caption=caption, format="gif")
        log[f"{prefix}/{i}/path"] = wandb.Image(str(png), caption=caption)
    return log
