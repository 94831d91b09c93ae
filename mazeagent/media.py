"""Rollouts as media for people and wandb: an animated GIF of the frames and a still of the path taken.

Why GIF: wandb logs a ``.gif`` file as a video as is (``wandb.Video(path, format="gif")``), so no video encoder
(moviepy, ffmpeg) is needed on a cluster node, and the same file plays in a browser, a notebook or a report.
GIF frames have at most 256 colours: an episode whose frames use <= 256 colours in all (``use_backgrounds=False``)
is stored exactly; with procgen's textured backgrounds (~300-1500 colours) one palette is fitted to the episode
(no flicker), which posterises the texture slightly: ~1 of 255 mean error per channel on real episodes. GIF merges
identical consecutive frames (the mouse bumping into a wall) into one longer frame; :func:`read_gif` expands them,
so it returns one frame per env step.

Training evaluations record episodes with :func:`record_episodes` (:func:`eval_media`); the study replays its own
(``experiments/study.py``). Both end in :func:`episode_media`.
"""
from __future__ import annotations

import functools
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
def _check_frames(frames: Any) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:] != (OBS, OBS, 3) or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be a non-empty uint8 array (T, {OBS}, {OBS}, 3), got {frames.dtype} "
                         f"{frames.shape}")
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
    """Write (T, 64, 64, 3) uint8 frames as a looping GIF, each pixel a ``scale x scale`` block; returns the path."""
    from PIL import Image

    frames = _check_frames(frames)
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


# ---- recording a policy during training ---------------------------------------------------------------------------

def record_episodes(config: Any, state: Any, key: Any, episodes: int = 1, greedy: bool = False
                    ) -> dict[str, list[Episode]]:
    """``{"train": [...], "stock": [...]}``: one fresh episode on each of the current levels of the first
    ``episodes`` training envs (mouse back on its start square, facing left), played with the state's params, as
    the level is ("train") and with its cheese moved to an open square drawn uniformly, never the start ("stock":
    procgen's stock ``maze`` placement on the same layouts, the out-of-distribution test). Same state and key, same
    episodes.

    Why these levels: the training state already holds draws from the training distribution, so recording costs one
    small jitted scan -- no level generation to compile -- and changes nothing in the training state. Frames are
    what the env shows (static frame with the mouse composited in); ``squares`` has one more entry, the square
    after the last move."""
    import jax

    from mazeagent.ppo.evaluate import DISTRIBUTIONS  # named as the eval metrics

    n_envs = int(state.env_state.slot.shape[0])
    if isinstance(episodes, bool) or not isinstance(episodes, int) or not 1 <= episodes <= n_envs:
        raise ValueError(f"episodes must be an int in [1, num_envs={n_envs}], got {episodes!r}")
    grid, obs, mouse, reflected, live, got = jax.device_get(
        _recorder(config, episodes, greedy)(state.params, state.env_state, key))
    world, out = _world(config), {d: [] for d in DISTRIBUTIONS}
    for row in range(2 * episodes):  # rows: the train episodes, then the stock ones
        t = int(live[row].sum())  # steps played: up to the cheese or the timeout
        out[DISTRIBUTIONS[row // episodes]].append(Episode(
            frames=np.asarray(obs[row, :t]), squares=np.asarray(mouse[row, :t + 1]),
            reflected=np.asarray(reflected[row, :t + 1]), world=world, cheese=bool(got[row].any()),
            grid=np.asarray(grid[row])))
    return out


def _world(config: Any) -> int:
    from mazeagent.env.levelgen import world_dim

    return world_dim(config.distribution_mode)


@functools.lru_cache(maxsize=8)
def _recorder(config: Any, episodes: int, greedy: bool):
    """Jitted ``(params, env_state, key) -> (grid, obs, mouse, reflected, live, got_cheese)`` with leading axes
    (2 * episodes, step): both distributions in one program, so one compilation. ``mouse``/``reflected`` have
    ``timeout + 1`` steps (the state after the last move included)."""
    import jax
    import jax.numpy as jnp

    from mazeagent.env.core import move, render_tables
    from mazeagent.env.render import composite_mouse, render_static
    from mazeagent.maze.level import CHEESE, SPACE
    from mazeagent.ppo.train import act, make_env, make_net

    net, env_params = make_net(config), make_env(config, num_envs=1).params
    tables, world, timeout = render_tables(env_params), env_params.world_dim, config.timeout

    def one(params, frame, grid, start, background, stock, key):
        k_cheese, k_run = jax.random.split(key)
        open_ = ((grid == SPACE) | (grid == CHEESE)).at[start[0], start[1]].set(False).ravel()
        cell = jax.random.choice(k_cheese, open_.size, p=open_ / open_.sum())
        moved = jnp.where(grid == CHEESE, SPACE, grid).ravel().at[cell].set(CHEESE).reshape(grid.shape)
        grid = jnp.where(stock, moved, grid)
        frame = jnp.where(stock, render_static(grid, background, tables, use_backgrounds=env_params.use_backgrounds),
                          frame)

        def step(carry, k):
            mouse, reflected, live = carry
            obs = composite_mouse(frame, mouse, reflected, tables)
            action, _, _ = act(net, params, obs[None], k, greedy)
            mouse2, reflected2 = move(lambda r, c: grid[r, c], mouse, reflected, action[0], world)
            got = live & (grid[mouse2[0], mouse2[1]] == CHEESE)
            return (mouse2, reflected2, live & ~got), (obs, mouse, reflected, live, got)

        (last, last_r, _), (obs, mouse, reflected, live, got) = jax.lax.scan(
            step, (start, jnp.bool_(False), jnp.bool_(True)), jax.random.split(k_run, timeout))
        return (grid, obs, jnp.concatenate([mouse, last[None]]), jnp.concatenate([reflected, last_r[None]]), live,
                got)

    @jax.jit
    def run(params, env_state, key):
        env = jnp.tile(jnp.arange(episodes), 2)
        slot = env_state.slot[env]
        stock = jnp.arange(2 * episodes) >= episodes
        return jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0, 0))(
            params, env_state.bank.frame[env, slot], env_state.grid[env], env_state.bank.start[env, slot],
            env_state.background[env], stock, jax.random.split(key, 2 * episodes))

    return run


def eval_media(config: Any, state: Any, key: Any, out_dir: str | Path, episodes: int = 1) -> dict[str, Any]:
    """The training run's eval media, named as the eval metrics: ``eval/{train,stock}/rollout/<i>/{video,path}``
    (see :func:`record_episodes`)."""
    log: dict[str, Any] = {}
    for dist, eps in record_episodes(config, state, key, episodes).items():
        log.update(episode_media(eps, out_dir, f"eval/{dist}/rollout"))
    return log
