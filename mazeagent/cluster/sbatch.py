"""Rendering sbatch scripts from the templates in ``slurm/``, and validating what goes into them: the home of the
template fields (:func:`render`), Slurm's time-limit and ``--array`` syntax, sweep grids, and the two option sets a
job carries (:class:`Resources`, :class:`WandbOptions`).

Every value that reaches a script is checked here (:func:`check_token` for anything unquoted), so a job cannot fail
on it in the queue; :mod:`mazeagent.cluster.submit` builds plans from these pieces and sends them.
"""
from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mazeagent.ppo.config import DEFAULT_WANDB_MODE, WANDB_MODES

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_ARRAY_INDEX = 100_000  # far above any cluster's MaxArraySize; catches typos like 0-1e9

_TOKEN = re.compile(r"\{\{(\w+)\}\}")
_SAFE = re.compile(r"^[A-Za-z0-9._,:=+@/%-]+$")  # what may appear unquoted in an #SBATCH line or env value


# ---- templates ------------------------------------------------------------------------------------------------------
def template_dir() -> Path:
    """``slurm/`` of this checkout (``MAZEAGENT_SLURM_DIR`` overrides, e.g. for a site's own templates)."""
    path = Path(os.environ.get("MAZEAGENT_SLURM_DIR", REPO_ROOT / "slurm"))
    if not (path / "lib" / "job.sh").is_file():
        raise ValueError(f"sbatch templates not found in {path} (expected slurm/*.sbatch and slurm/lib/job.sh; "
                         f"set MAZEAGENT_SLURM_DIR to the folder that holds them)")
    return path


def render(text: str, values: dict[str, str]) -> str:
    """Fill ``{{name}}`` fields. Every field must be given and every value used; a field whose value is empty and
    that stands alone on its line removes that line (optional ``#SBATCH`` lines)."""
    wanted = set(_TOKEN.findall(text))
    missing, unused = wanted - set(values), set(values) - wanted
    if missing or unused:
        raise ValueError(f"template fields missing: {sorted(missing)}, unknown: {sorted(unused)}")
    lines = []
    for line in text.splitlines():
        m = _TOKEN.fullmatch(line.strip())
        if m and not values[m.group(1)]:
            continue
        lines.append(_TOKEN.sub(lambda t: values[t.group(1)], line))
    return "\n".join(lines) + "\n"


def load_template(name: str) -> str:
    path = template_dir() / f"{name}.sbatch"
    if not path.is_file():
        raise ValueError(f"no sbatch template {path}")
    return path.read_text()


# ---- validation helpers ---------------------------------------------------------------------------------------------
def parse_time(spec: str) -> int:
    """Slurm time limit -> seconds. Accepts ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``."""
    s = str(spec).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", s)
    if not m or not s:
        raise ValueError(f"invalid time limit {spec!r}: use minutes, H:M:S or D-H:M:S (e.g. 90, 4:00:00, 1-12)")
    days, a, b, c = m.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, mi, se = (parts + [0, 0])[:3]
        total = int(days) * 86400 + h * 3600 + mi * 60 + se
    elif len(parts) == 1:
        total = parts[0] * 60
    elif len(parts) == 2:
        total = parts[0] * 60 + parts[1]
    else:
        total = parts[0] * 3600 + parts[1] * 60 + parts[2]
    if total <= 0:
        raise ValueError(f"time limit {spec!r} must be positive")
    return total


def parse_array_spec(spec: str) -> list[int]:
    """Task ids of a Slurm ``--array`` spec (``0-15``, ``1,3,5``, ``0-30:10``, ``0-99%8``), sorted and unique."""
    s = str(spec).strip()
    body, _, throttle = s.partition("%")
    if throttle and not (throttle.isdigit() and int(throttle) > 0):
        raise ValueError(f"invalid array spec {spec!r}: the throttle after '%' must be a positive integer")
    ids: set[int] = set()
    for part in body.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not m:
            raise ValueError(f"invalid array spec {spec!r}: {part!r} is not N, N-M or N-M:STEP "
                             f"(example: 0-15, 1,3,5, 0-30:10, 0-99%8)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        step = int(m.group(3)) if m.group(3) is not None else 1
        if hi < lo or step <= 0:
            raise ValueError(f"invalid array spec {spec!r}: range {part!r} is empty or has a zero step")
        if hi > MAX_ARRAY_INDEX:
            raise ValueError(f"invalid array spec {spec!r}: index {hi} exceeds {MAX_ARRAY_INDEX}")
        ids.update(range(lo, hi + 1, step))
    return sorted(ids)


def parse_grid(axes: list[str] | tuple[str, ...]) -> list[dict[str, str]]:
    """``["rand_region=1..3", "seed=0,1"]`` -> the cartesian product as a list of ``{key: raw value}``, first axis
    slowest. ``A..B`` is an inclusive integer range; values stay strings (the trainer's parser types them)."""
    keys, values = [], []
    for axis in axes:
        key, sep, raw = axis.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ValueError(f"--grid expects KEY=V1,V2,... or KEY=A..B, got {axis!r}")
        if key in keys:
            raise ValueError(f"--grid {key} given twice; put all its values in one --grid")
        m = re.fullmatch(r"\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*", raw)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"--grid {axis!r}: empty range {lo}..{hi}")
            vals = [str(v) for v in range(lo, hi + 1)]
        else:
            vals = [v.strip() for v in raw.split(",")]
            if any(not v for v in vals):
                raise ValueError(f"--grid {axis!r} has an empty value")
        if len(set(vals)) != len(vals):
            raise ValueError(f"--grid {axis!r} repeats a value")
        keys.append(key)
        values.append(vals)
    if not keys:
        raise ValueError("a sweep needs at least one --grid KEY=V1,V2,...")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def check_token(what: str, value: str) -> str:
    """``value`` itself if it may stand unquoted in an ``#SBATCH`` line or env value; ValueError naming ``what``."""
    if not value or not _SAFE.match(value):
        raise ValueError(f"{what} {value!r} may only contain letters, digits and ._,:=+@/%- (no spaces or quotes)")
    return value


def check_path(what: str, path: Path) -> str:
    return check_token(what, str(path))


# ---- resources and wandb --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resources:
    """What a job asks Slurm for. Optional fields (None / 0) produce no ``#SBATCH`` line."""

    time: str = "1-00:00:00"
    cpus_per_task: int = 8
    mem: str | None = None  # e.g. "32G"; None = the partition's default
    gpus: int = 0
    gpu_type: str | None = None  # e.g. "a100" -> --gres=gpu:a100:N
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    signal_lead_s: int = 300  # USR1 this long before the time limit: time to checkpoint and requeue
    max_restarts: int = 20
    extra: tuple[str, ...] = ()  # raw sbatch options, e.g. ("--exclusive", "--mail-type=END")

    def validate(self) -> "Resources":
        limit = parse_time(self.time)
        if self.cpus_per_task < 1:
            raise ValueError(f"--cpus must be >= 1, got {self.cpus_per_task}")
        if self.gpus < 0:
            raise ValueError(f"--gpus must be >= 0, got {self.gpus}")
        if not 1 <= self.signal_lead_s <= 65535:
            raise ValueError(f"--signal-lead must be 1..65535 s (Slurm's limit), got {self.signal_lead_s}")
        if self.signal_lead_s >= max(limit, 60):  # Slurm rounds limits up to whole minutes
            raise ValueError(f"--signal-lead {self.signal_lead_s} s must be shorter than the time limit "
                             f"{self.time!r} ({limit} s), or USR1 would come before the job runs")
        if self.max_restarts < 0:
            raise ValueError(f"--max-restarts must be >= 0, got {self.max_restarts}")
        if self.mem is not None and not re.fullmatch(r"\d+[KMGT]?", self.mem):
            raise ValueError(f"--mem {self.mem!r}: use a number with an optional K/M/G/T suffix, e.g. 32G")
        for what in ("gpu_type", "partition", "account", "qos", "constraint"):
            if getattr(self, what) is not None:
                check_token(f"--{what.replace('_', '-')}", getattr(self, what))
        for opt in self.extra:
            if not opt.startswith("--") or "\n" in opt:
                raise ValueError(f"--sbatch-arg {opt!r} must be one long sbatch option such as --exclusive")
            if opt.split("=")[0] in ("--array", "--output", "--dependency", "--job-name", "--chdir"):
                raise ValueError(f"--sbatch-arg {opt!r}: that option is set by the template")
        return self

    def sbatch_lines(self) -> list[str]:
        lines = []
        if self.mem:
            lines.append(f"--mem={self.mem}")
        if self.gpus:
            lines.append(f"--gres=gpu:{self.gpu_type + ':' if self.gpu_type else ''}{self.gpus}")
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                lines.append(f"--{key}={getattr(self, key)}")
        lines += list(self.extra)
        return [f"#SBATCH {line}" for line in lines]


@dataclass(frozen=True)
class WandbOptions:
    """How training jobs log to wandb. Offline by default: compute nodes often have no network; `wandb sync`
    uploads afterwards. ``group`` defaults to the job name, so one sweep is one wandb group."""

    mode: str = DEFAULT_WANDB_MODE
    project: str = "mazeagent"
    entity: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()

    def validate(self) -> "WandbOptions":
        if self.mode not in WANDB_MODES:
            raise ValueError(f"--wandb must be offline, online or disabled, got {self.mode!r}")
        check_token("--wandb-project", self.project)
        for what, v in (("--wandb-entity", self.entity), ("--wandb-group", self.group)):
            if v is not None:
                check_token(what, v)
        for t in self.tags:
            check_token("--tag", t)
            if "," in t:
                raise ValueError(f"--tag {t!r}: one tag per --tag (commas separate wandb tags)")
        return self

    def train_overrides(self) -> list[str]:
        out = [f"wandb_mode={self.mode}", f"wandb_project={self.project}"]
        if self.entity:
            out.append(f"wandb_entity={self.entity}")
        return out
