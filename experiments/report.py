"""The study report: ``report.md``, ``index.html``, PNG figures and ``results.json`` from one structured source.

A report is a list of :class:`Section` s. Each section holds its numbers (``results``, merged into results.json under
the section id) and blocks (paragraphs, tables, figures) rendered to both Markdown and HTML. Tables are built from
the same values that go into ``results``, with one formatter (:func:`fmt`), so every number a reader sees is in
results.json. Later studies (probes, patching, retargeting) add their own sections the same way: build a
``Section`` and call :meth:`Report.add`; scorecard rows (``verdicts.scorecard_row``) go to :meth:`Report.score`.
"""
from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mazeagent.experiments import verdicts
from mazeagent.experiments.stats import fmt  # noqa: F401 - the report's number format, used by every section

FIG_DIR = "figures"


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (studies run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Figure:
    path: str  # relative to the report directory
    caption: str


@dataclass
class Section:
    id: str
    title: str
    results: dict = field(default_factory=dict)
    blocks: list = field(default_factory=list)  # str paragraphs, Table, Figure

    def text(self, s: str) -> "Section":
        self.blocks.append(s)
        return self

    def table(self, headers: list[str], rows: list[list[Any]], caption: str = "") -> "Section":
        self.blocks.append(Table(headers, rows, caption))
        return self

    def figure(self, path: str, caption: str) -> "Section":
        self.blocks.append(Figure(path, caption))
        return self


class Report:
    """Collects sections and scorecard rows, then writes every artefact into ``out_dir``."""

    def __init__(self, out_dir: str | os.PathLike, title: str = "mazeagent behaviour study", meta: dict | None = None):
        self.out_dir = Path(out_dir)
        (self.out_dir / FIG_DIR).mkdir(parents=True, exist_ok=True)
        self.title = title
        self.meta = dict(meta or {})
        self.sections: list[Section] = []
        self.rows: list[dict] = []

    def figure_path(self, name: str) -> tuple[Path, str]:
        """(absolute path to save a PNG at, path relative to the report) for a figure called ``name``."""
        rel = f"{FIG_DIR}/{name}.png"
        return self.out_dir / rel, rel

    def save_figure(self, section: "Section", fig: Any, name: str, caption: str, tight: bool = True) -> None:
        """Write a matplotlib figure into the report's figure folder, close it, and list it in ``section``."""
        import matplotlib.pyplot as plt

        if tight:
            fig.tight_layout()
        path, rel = self.figure_path(name)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        section.figure(rel, caption)

    def add(self, section: Section) -> Section:
        if any(s.id == section.id for s in self.sections):
            raise ValueError(f"report already has a section {section.id!r}")
        self.sections.append(section)
        return section

    def score(self, row: dict) -> None:
        self.rows = [r for r in self.rows if r["id"] != row["id"]] + [row]

    def scorecard(self) -> list[dict]:
        """Rows in prediction order; predictions nobody measured appear as "not measured"."""
        by_id = {r["id"]: r for r in self.rows}
        out = []
        for p in verdicts.PREDICTIONS:
            out.append(by_id.get(p.id) or verdicts.scorecard_row(p.id, "not measured in this study", None, None,
                                                                  verdicts.NOT_MEASURED))
        out += [r for r in self.rows if r["id"] not in verdicts.BY_ID]
        return out

    def results(self) -> dict:
        rows = self.scorecard()
        return _jsonable({"title": self.title, "meta": self.meta, "scorecard": rows,
                          "brier": verdicts.brier_summary(rows), "calibration": verdicts.calibration(rows),
                          "sections": {s.id: s.results for s in self.sections}})

    # ------------------------------------------------------------------------------------------------ writers

    def _scorecard_table(self, results: dict) -> Table:
        """The scorecard at a glance: one short line per prediction (the long texts are in :meth:`_questions_table`)."""
        rows = [[r["id"], r.get("short") or r["question"], fmt(r["credence"], 2), _measured(r),
                 r.get("published") or "—", r["verdict"], fmt(r["brier"])] for r in results["scorecard"]]
        return Table(["ID", "Claim", "Credence", "Measured [95% CI]", "Published", "Verdict", "Brier"], rows)

    def _questions_table(self, results: dict) -> Table:
        rows = [[r["id"], r["question"], r["answer"], r["measured"], r.get("published_source") or "—"]
                for r in results["scorecard"]]
        return Table(["ID", "Question", "Forecast", "What we measured", "Published in"], rows)

    def _calibration_figure(self, cal: dict) -> Figure | None:
        """Credences against resolved outcomes (jittered points; per-bin share supported with Wilson CIs)."""
        if not cal["points"]:
            return None
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        ax.plot([0, 1], [0, 1], ls=":", c="gray", label="perfect calibration")
        jitter = np.random.default_rng(0).uniform(-0.04, 0.04, len(cal["points"]))
        xs = [p["credence"] for p in cal["points"]]
        ys = np.array([p["outcome"] for p in cal["points"]]) + jitter
        ax.scatter(xs, ys, s=18, alpha=0.6, label="resolved predictions")
        for p, y in zip(cal["points"], ys):
            ax.annotate(p["id"], (p["credence"], y), fontsize=6, xytext=(3, 0), textcoords="offset points")
        if cal["bins"]:
            b = cal["bins"]
            ax.errorbar([v["mean_credence"] for v in b], [v["rate"] for v in b], fmt="s-", c="C3", capsize=3,
                        yerr=np.abs(np.array([v["ci"] for v in b]).T - [v["rate"] for v in b]),
                        label="share supported per credence bin")
        ax.set_xlim(-0.02, 1.02), ax.set_ylim(-0.1, 1.1)
        ax.set_xlabel("forecaster's credence"), ax.set_ylabel("outcome (1 = supported)")
        ax.legend(fontsize=7, loc="upper left")
        caption = "Calibration: credences against the resolved outcomes (inconclusive and unmeasured rows left out)"
        path, rel = self.figure_path("calibration")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return Figure(rel, caption)

    def write(self, wandb_mode: str = "disabled") -> dict[str, Path]:
        """Write results.json, report.md and index.html (figures are saved by the sections); log to wandb."""
        res = self.results()
        paths = {"results": self.out_dir / "results.json", "markdown": self.out_dir / "report.md",
                 "html": self.out_dir / "index.html"}
        paths["results"].write_text(json.dumps(res, indent=1, allow_nan=False))
        brier = res["brier"]
        top = Top(score=self._scorecard_table(res), questions=self._questions_table(res),
                  meta=Table(["Setting", "Value"], [[k, fmt(v)] for k, v in flatten_items(res["meta"])]),
                  brier=(f"Mean Brier score of the resolved credences: {fmt(brier['mean'])} over "
                         f"{fmt(brier['n_resolved'])} of {fmt(brier['n_with_credence'])} predictions with a credence."),
                  calibration=self._calibration_figure(res["calibration"]))
        paths["markdown"].write_text(_markdown(self.title, top, self.sections))
        paths["html"].write_text(_html(self.title, top, self.sections))
        if wandb_mode != "disabled":
            log_wandb(self, res, wandb_mode)
        return paths


@dataclass
class Top:
    """What the report shows before its sections (the questions fold away below the scorecard)."""

    score: Table
    questions: Table
    meta: Table
    brier: str
    calibration: Figure | None


def _measured(row: dict) -> str:
    """Value and CI in one cell."""
    if row["value"] is None:
        return "—"
    return fmt(row["value"]) + (f" {fmt(row['ci'])}" if row.get("ci") is not None else "")


def _cell(v: Any) -> str:
    return v if isinstance(v, str) else fmt(v)


def _markdown(title: str, top: Top, sections: list[Section]) -> str:
    def table(t: Table) -> list[str]:
        out = [f"*{t.caption}*", ""] if t.caption else []
        out.append("| " + " | ".join(t.headers) + " |")
        out.append("|" + "---|" * len(t.headers))
        out += ["| " + " | ".join(_cell(c).replace("|", "\\|") for c in row) + " |" for row in t.rows]
        return out + [""]

    def figure(b: Figure) -> list[str]:
        return [f"![{b.caption}]({b.path})", "", f"*{b.caption}*", ""]

    lines = [f"# {title}", "", "## Prediction scorecard", ""] + table(top.score) + [
        top.brier, "", "The full questions, forecasts and what we measured are under "
        "[Prediction questions](#prediction-questions) at the end.", ""]
    lines += figure(top.calibration) if top.calibration else []
    lines += ["## Settings", ""] + table(top.meta)
    for s in sections:
        lines += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                lines += table(b)
            elif isinstance(b, Figure):
                lines += figure(b)
            else:
                lines += [b, ""]
    lines += ["## Prediction questions", ""] + table(top.questions)
    return "\n".join(lines)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #ccc;padding:3px 7px;"
        "vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd}"
        ".supported{background:#dff5df}.contradicted{background:#f9dede}.inconclusive{background:#fff6d6}"
        ".not-demonstrated{background:#ececec}details{margin:.5em 0 1.5em}summary{cursor:pointer;font-weight:600}"
        "figcaption{font-style:italic;margin-bottom:1.5em}")


_ROW_CLASSES = (verdicts.SUPPORTED, verdicts.CONTRADICTED, verdicts.INCONCLUSIVE, verdicts.NOT_DEMONSTRATED)


def _html(title: str, top: Top, sections: list[Section]) -> str:
    e = html.escape

    def table(t: Table) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in t.headers)
        body = []
        for row in t.rows:
            cls = next((c for c in row if isinstance(c, str) and c in _ROW_CLASSES), "").replace(" ", "-")
            cells = "".join(f"<td>{e(_cell(c))}</td>" for c in row)
            body.append(f'<tr class="{cls}">{cells}</tr>')
        cap = f"<caption>{e(t.caption)}</caption>" if t.caption else ""
        return f"<table>{cap}<tr>{head}</tr>{''.join(body)}</table>"

    def figure(b: Figure) -> str:
        return (f'<figure><img src="{e(b.path)}" alt="{e(b.caption)}">'
                f"<figcaption>{e(b.caption)}</figcaption></figure>")

    nav = "".join(f'<li><a href="#{e(s.id)}">{e(s.title)}</a></li>' for s in sections)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style>"
             f"</head><body><h1>{e(title)}</h1>", "<h2>Prediction scorecard</h2>", table(top.score),
             f"<p>{e(top.brier)}</p>",
             f"<details><summary>Questions, forecasts and what we measured</summary>{table(top.questions)}</details>"]
    if top.calibration:
        parts.append(figure(top.calibration))
    parts += [f"<ul>{nav}</ul>", "<details><summary>Settings</summary>", table(top.meta), "</details>"]
    for s in sections:
        parts.append(f'<h2 id="{e(s.id)}">{e(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, Table):
                parts.append(table(b))
            elif isinstance(b, Figure):
                parts.append(figure(b))
            else:
                parts.append(f"<p>{e(b)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _jsonable(x: Any) -> Any:
    """Plain JSON types; non-finite floats become None (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


def flatten_items(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dict → [("a.b", leaf), ...] for the settings table."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        out += flatten_items(v, name) if isinstance(v, dict) else [(name, v)]
    return out


def flatten_numbers(d: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a nested results dict as ``{"a/b/0": value}`` (for wandb summaries and checks)."""
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten_numbers(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.update(flatten_numbers(v, f"{prefix}/{i}"))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix] = float(d)
    return out


def log_wandb(report: Report, results: dict, mode: str = "offline", media: dict[str, Any] | None = None,
              job_type: str | None = None) -> str:
    """Log the same numbers (summary), the scorecard (table), every figure (images; ``.gif`` figures as videos) and
    ``media`` (extra wandb objects, e.g. the study's example rollouts) to one wandb run.

    Run metadata follows the Slurm jobs' environment (``WANDB_PROJECT``, ``WANDB_NAME``, ``WANDB_RUN_GROUP``,
    ``WANDB_TAGS``); ``job_type`` defaults to ``$WANDB_JOB_TYPE``, else "probe" for a probes report and "study"
    otherwise, so a sweep's train, study and probe runs sit side by side in one group. The checkpoint's
    ``rand_region:``/``scale:`` tags are added, as on its training run.
    """
    if mode not in ("offline", "online"):
        raise ValueError(f"wandb mode must be 'offline', 'online' or 'disabled', got {mode!r}")
    import wandb

    from mazeagent.ppo.logging import checkpoint_tags, finish_run

    if job_type is None:
        probes = bool(report.sections) and all(s.id.startswith("probes_") for s in report.sections)
        job_type = os.environ.get("WANDB_JOB_TYPE") or ("probe" if probes else "study")
    tags = [t.strip() for t in os.environ.get("WANDB_TAGS", "").split(",") if t.strip()]
    tags += [t for t in checkpoint_tags(results["meta"].get("checkpoint")) if t not in tags]
    env = os.environ.get  # read here, not by wandb: its settings are read once per process
    run = wandb.init(project=env("WANDB_PROJECT") or "mazeagent-study", name=env("WANDB_NAME") or None,
                     group=env("WANDB_RUN_GROUP") or None, job_type=job_type, tags=tags or None,
                     dir=str(report.out_dir), mode=mode, config=results["meta"],
                     settings=wandb.Settings(x_disable_stats=True, console="off", silent=True))
    try:
        log: dict[str, Any] = {name: wandb.Table(columns=t.headers, data=[[str(c) for c in r] for r in t.rows])
                               for name, t in (("scorecard", report._scorecard_table(results)),
                                               ("scorecard_questions", report._questions_table(results)))}
        for s in report.sections:
            for b in s.blocks:
                if isinstance(b, Figure):
                    path = str(report.out_dir / b.path)
                    log[f"figures/{Path(b.path).stem}"] = (
                        wandb.Video(path, caption=b.caption, format="gif") if b.path.lower().endswith(".gif")
                        else wandb.Image(path, caption=b.caption))
                elif isinstance(b, Table):
                    log[f"tables/{s.id}/{len(log)}"] = wandb.Table(columns=b.headers,
                                                                   data=[[_cell(c) for c in r] for r in b.rows])
        log.update(media or {})
        run.log(log, step=0)
        nums = flatten_numbers(results["sections"])
        nums.update(flatten_numbers({"brier": results["brier"]}))
        run.summary.update(nums)
        return run.id
    finally:
        finish_run(run)
