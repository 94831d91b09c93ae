"""Run logging: a local ``metrics.jsonl`` always, and wandb (offline by default, online, or disabled).

Every row is keyed by env steps. Resume relies on ``metrics.jsonl`` alone, never on reading wandb's files back:

* ``metrics.jsonl`` is cut back to the resumed checkpoint's step (rows after it will be recomputed, bitwise equal).
* wandb keeps one run id per output directory (``run.json``). Offline, each process writes its own
  ``offline-run-*-<id>`` segment, and a SIGKILLed segment loses its unflushed tail (wandb writes the log lazily). So a
  resumed segment re-logs every row of ``metrics.jsonl`` up to the resumed step and then logs the rest: the newest
  segment alone holds the whole history. That is what syncing needs: ``wandb sync`` uploads the segments of one id in
  start-time order, and a sync does not resume (in wandb-core's source, read as of 0.28, sync settings carry no
  ``resume`` and only a resume gives the upload a history offset), so each segment's history goes up from its first
  line and replaces the earlier one's instead of adding to it (what wandb issues 3841 and 5865 report). The newest
  segment wins, and it is complete. (Not checked against a server: none is reachable here.) Re-logged rows carry
  no media: the eval GIFs of those steps stay in the earlier segment's ``files/`` and under ``<out>/media/<step>/``.
* Online, ``wandb.init(resume="allow")`` resumes server-side: ``run.starting_step`` is one past the last step the
  server holds, and wandb ignores (with a warning) any row logged below it. We log only rows at or after it, so the
  rows a killed process never uploaded come back from ``metrics.jsonl`` and the ones the server has are not re-sent.
  Offline (and for a fresh run) ``starting_step`` is 0: every row is logged.

Checkpoints go to wandb as versions of one ``model`` artifact per run (``ckpt-<run id>``, aliases ``latest`` and
``step-<env steps>``). A resumed segment logs the checkpoint it resumed from as well as those it writes: an earlier
segment's record of it may have died with that segment's tail, and if it did not, the version is the same content,
so the same manifest digest, and wandb makes no new version (``Artifact.digest``: "If an artifact has the same digest
as the current `latest` version, then `log_artifact` is a no-op"; wandb-core's artifact saver asks the server with
digest deduplication on and uploads nothing when the answer is an already committed version). Up to
:func:`reference_threshold` bytes a checkpoint is copied into the artifact (wandb stages the copy under
``$WANDB_DATA_DIR``, so pruning old checkpoints cannot break a later ``wandb sync``); above it the artifact holds
``file://`` references with checksums, so a scale-4 run does not duplicate gigabytes, and the files must still exist
where the references point when someone downloads them.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mazeagent.ppo.config import RUN_KEYS, PPOConfig

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
MEDIA_DIR = "media"  # eval rollout GIFs/PNGs, one folder per env step (kept: viewable without wandb)
ARTIFACT_REFERENCE_MB = 64.0  # checkpoints larger than this are logged by reference
REFERENCE_ENV = "MAZEAGENT_ARTIFACT_REFERENCE_MB"  # overrides ARTIFACT_REFERENCE_MB (e.g. 0: always by reference)


class RunLogger:
    """Writes one row per update to ``metrics.jsonl`` and wandb. ``resume_step`` is the env-step count of the
    checkpoint being resumed (None for a fresh run)."""

    def __init__(self, out_dir: str | os.PathLike, config: PPOConfig, resume_step: int | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out_dir / METRICS_FILE
        rows = _cut_metrics(self.metrics_path, resume_step)
        self._metrics = open(self.metrics_path, "a")
        self.run_id = _run_id(self.out_dir)
        self._run: Any = None
        self.config = config
        if config.wandb_mode != "disabled":
            reference_threshold()  # a bad override fails now, not at the first checkpoint
            self._init_wandb(config, rows)

    def will_log(self, step: int) -> bool:
        """Whether a wandb row at ``step`` will be written (so media for it are worth making): not below the run's
        ``starting_step``, which an online resume's server already holds (and wandb would drop)."""
        return self._run is not None and int(step) >= self._run.starting_step

    def media_dir(self, step: int) -> Path:
        return self.out_dir / MEDIA_DIR / f"{int(step):012d}"

    def _init_wandb(self, config: PPOConfig, rows: list[dict[str, Any]]) -> None:
        import wandb

        self._run = wandb.init(
            project=config.wandb_project, entity=config.wandb_entity, id=self.run_id, resume="allow",
            dir=str(self.out_dir), mode=config.wandb_mode,
            config={**config.to_dict(), "batch_size": config.batch_size, "num_updates": config.num_updates},
            settings=wandb.Settings(x_disable_stats=True, console="off", silent=True))
        for row in rows:  # a resume: the history up to the resumed step, so this segment holds all of it
            if self.will_log(row["step"]):
                self._run.log(_wandb_row(row), step=row["step"])

    def log(self, row: dict[str, Any], media: dict[str, Any] | None = None) -> None:
        """``row`` must hold an int ``step`` (env steps); values must be JSON numbers. ``media`` (wandb Video/Image
        objects) go to wandb only, in the same row (so a row re-logged on resume comes back without them)."""
        step = int(row["step"])
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        if self.will_log(step):
            self._run.log({**_wandb_row(row), **(media or {})}, step=step)

    def log_checkpoint(self, path: str | os.PathLike, update: int, env_steps: int) -> None:
        """Record the (final, renamed) checkpoint directory ``path`` as a version of the run's model artifact. Logging
        a checkpoint again (a resume logs the one it starts from) adds no version: same content, same digest."""
        if self._run is None:
            return
        import wandb

        path = Path(path).resolve()
        files = sorted(p for p in path.iterdir() if p.is_file())
        size = sum(p.stat().st_size for p in files)
        by_reference = size > reference_threshold()
        art = wandb.Artifact(f"ckpt-{self.run_id}", type="model", metadata={
            "env_steps": int(env_steps), "update": int(update), "config_hash": config_hash(self.config),
            "checkpoint": str(path), "bytes": size, "by_reference": by_reference})
        if by_reference:  # checksummed file:// entries; nothing is copied
            art.add_reference(path.as_uri())
        else:
            for p in files:  # add_file, not add_dir: the same copy, without add_dir's console chatter
                art.add_file(str(p), name=p.name)
        self._run.log_artifact(art, aliases=["latest", f"step-{int(env_steps)}"])

    def close(self, exit_code: int = 0) -> None:
        self._metrics.close()
        if self._run is not None:
            finish_run(self._run, exit_code)
            self._run = None


def finish_run(run: Any, exit_code: int = 0) -> None:
    """``run.finish()``, then ``wandb.teardown()`` so that the run's ``.wandb`` file is complete on return.

    ``finish()`` only tells wandb's service process that the run is done; the service closes the run's transaction
    log afterwards (an offline file read right after ``finish()`` often lacks its tail). ``teardown()`` asks the
    service to finish and close every stream and waits for the process to exit. It also ends any other unfinished run
    of this process, so call this when the process logs nothing else to wandb; the next ``wandb.init`` starts a new
    service, so this works any number of times per process. (Where this process did not start the service, e.g. an
    inherited ``WANDB_SERVICE``, teardown does not wait; nothing in mazeagent runs that way.)"""
    import wandb

    run.finish(exit_code=exit_code)
    wandb.teardown()


def reference_threshold() -> int:
    """Bytes above which a checkpoint is logged by reference: ``$MAZEAGENT_ARTIFACT_REFERENCE_MB`` (MiB) or
    :data:`ARTIFACT_REFERENCE_MB`."""
    raw = os.environ.get(REFERENCE_ENV, "").strip()
    try:
        mb = float(raw) if raw else ARTIFACT_REFERENCE_MB
    except ValueError:
        mb = -1.0
    if not 0 <= mb < 1e12:
        raise ValueError(f"{REFERENCE_ENV}={raw!r} must be a number of MiB >= 0 (checkpoints larger than this are "
                         f"logged to wandb by reference; default {ARTIFACT_REFERENCE_MB:g})")
    return int(mb * (1 << 20))


def run_tags(config: PPOConfig) -> list[str]:
    """The wandb tags that make runs of a sweep filterable by what the agent is: ``rand_region:<r|none>`` and
    ``scale:<net_scale>``."""
    rr = "none" if config.rand_region is None else config.rand_region
    return [f"rand_region:{rr}", f"scale:{config.net_scale}"]


def checkpoint_tags(checkpoint: str | os.PathLike | None) -> list[str]:
    """:func:`run_tags` of the run a checkpoint path belongs to; [] when it is not a readable checkpoint."""
    from mazeagent.ppo.checkpoint import read_meta, resolve

    try:
        return run_tags(PPOConfig.from_dict(read_meta(resolve(checkpoint))["config"])) if checkpoint else []
    except (ValueError, TypeError, KeyError, OSError):  # a label, not a path (e.g. the demo's "UNTRAINED ...")
        return []


def config_hash(config: PPOConfig) -> str:
    """Short hash of what a config trains (run-management keys excluded): equal hashes, comparable checkpoints."""
    learned = {k: v for k, v in config.to_dict().items() if k not in RUN_KEYS}
    return hashlib.sha256(json.dumps(learned, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_metrics(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(out_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cut_metrics(path: Path, resume_step: int | None) -> list[dict[str, Any]]:
    """Keep rows up to ``resume_step`` (all of them for a fresh run: there are none); rewrite atomically."""
    if resume_step is None or not path.exists():
        if path.exists() and path.stat().st_size:
            raise ValueError(f"{path} already holds metrics; resume the run (--resume) or choose a new --out")
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by SIGKILL mid-write
            continue
        if int(row["step"]) <= resume_step:
            rows.append(row)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return rows


def _run_id(out_dir: Path) -> str:
    path = out_dir / RUN_FILE
    if path.exists():
        return json.loads(path.read_text())["wandb_id"]
    run_id = os.urandom(4).hex()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"wandb_id": run_id}))
    os.replace(tmp, path)
    return run_id


def _wandb_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "step"}
