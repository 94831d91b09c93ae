"""ME5: can the network be finetuned into a pure cheese agent with < 10% of its original training compute?

The finetune itself is an ordinary training run started from the agent (``mazeagent bc|train --init-from AGENT
--set rand_region=none``: the cheese anywhere, which is what a *pure* cheese agent must handle). This module only
judges it, so the measurement is separate from however the finetune was made:

* compute is counted in training frames: env steps for PPO, labelled frames for behaviour cloning. The original's
  count is its whole lineage when the checkpoint records one (``extra.total_frames``), else that checkpoint's own
  stage (an undercount when it was itself started ``init_from`` another run, which makes the budget stricter; the
  report says so);
* the checkpoint judged is fixed in advance: the finetune run's newest checkpoint whose frames are within the budget
  (no picking the best of several);
* the bar is the original's own competence: its cheese rate on the distribution it was trained on. The finetuned
  agent is played on the stock distribution (cheese anywhere). Supported when the Wilson 95% CI of its cheese rate
  lies at/above ``(1 - ME5_REL_MARGIN)`` x the bar; contradicted when wholly below; else inconclusive
  (docs/predictions.md, ME5).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mazeagent.experiments import verdicts as V
from mazeagent.experiments.report import Report, Section
from mazeagent.experiments.stats import wilson_ci

ME5_BUDGET = 0.10  # "< 10% of the original training compute"
ME5_REL_MARGIN = 0.05  # within 5% (relative) of the original's own cheese rate counts as "as good at the cheese"


def training_frames(meta: dict[str, Any]) -> tuple[int, bool]:
    """``(frames, whole_lineage)`` a checkpoint was trained on, from its meta. ``whole_lineage`` is False when only
    the last stage is known although the run was started from another checkpoint."""
    extra, cfg = meta.get("extra") or {}, meta.get("config") or {}
    if "total_frames" in extra:
        return int(extra["total_frames"]), True
    for key in ("samples", "env_steps"):  # behaviour cloning / PPO
        if key in extra:
            return int(extra[key]), not cfg.get("init_from")
    raise ValueError(f"checkpoint meta records no training frames (extra has {sorted(extra)}); expected "
                     "'total_frames', 'samples' (bc) or 'env_steps' (train)")


def me5_verdict(ci: tuple[float, float], bar: float, margin: float = ME5_REL_MARGIN) -> str:
    """Supported iff the finetuned cheese-rate CI lies at/above ``(1 - margin) * bar``; contradicted iff wholly
    below; else inconclusive."""
    if not 0 <= bar <= 1:
        raise ValueError(f"bar must be a rate in [0, 1], got {bar}")
    target = (1 - margin) * bar
    lo, hi = ci
    return V.SUPPORTED if lo >= target else V.CONTRADICTED if hi < target else V.INCONCLUSIVE


@dataclass(frozen=True)
class Judged:
    path: Path
    frames: int


def within_budget(run: str | Path, budget_frames: float) -> tuple[Judged, list[Judged]]:
    """The finetune run's newest checkpoint trained on at most ``budget_frames``, and every checkpoint seen."""
    from mazeagent.ppo.checkpoint import list_checkpoints, read_meta
    from mazeagent.ppo.runner import checkpoint_dir

    found = [Judged(p, training_frames(read_meta(p))[0]) for p in list_checkpoints(checkpoint_dir(Path(run)))]
    if not found:
        raise ValueError(f"{run}: no checkpoints (expected a run directory made by `mazeagent bc` or `train`)")
    ok = [j for j in found if j.frames <= budget_frames]
    if not ok:
        raise ValueError(f"{run}: every checkpoint is past the budget of {budget_frames:,.0f} frames (the first has "
                         f"{found[0].frames:,}); checkpoint more often (--checkpoint-every)")
    return ok[-1], found


def me5(original: str | Path, finetuned: str | Path, out_dir: str | Path, episodes: int = 1000, seed: int = 0,
        budget: float = ME5_BUDGET, points: int = 4, wandb_mode: str = "disabled", progress: bool = True
        ) -> dict[str, Path]:
    """Judge ME5 for ``original`` (a checkpoint) and ``finetuned`` (a run started from it) into a report: the curve
    of cheese and top-right attainment on the stock distribution against the share of the original's frames spent
    (``points`` checkpoints within the budget, the judged one last), and the verdict at the budget."""
    import jax

    from mazeagent.ppo.checkpoint import load_policy, read_meta, resolve
    from mazeagent.ppo.evaluate import make_evaluator

    if episodes < 1 or not 0 < budget <= 1 or points < 1:
        raise ValueError(f"need episodes >= 1, 0 < budget <= 1 and points >= 1; got {episodes}, {budget}, {points}")
    orig_frames, whole = training_frames(read_meta(resolve(original)))
    judged, seen = within_budget(finetuned, budget * orig_frames)
    inside = [j for j in seen if j.frames <= judged.frames]
    curve_at = sorted({*(inside[round(i * (len(inside) - 1) / max(points - 1, 1))] for i in range(points - 1)),
                       judged}, key=lambda j: j.frames) if points > 1 else [judged]
    for j in curve_at:  # checked before any evaluation, so a wrong run fails in seconds, not after the first eval
        region = read_meta(j.path)["config"].get("rand_region")
        if region is not None:
            raise ValueError(f"{finetuned} trains with rand_region={region}; a pure-cheese finetune needs "
                             "the cheese anywhere (--set rand_region=none)")
    _, p0, c0 = load_policy(original)
    key = jax.random.PRNGKey(seed)

    def rate(r: dict, dist: str) -> dict:
        k = round(float(r[f"eval/{dist}/cheese_rate"]) * episodes)
        lo, hi = wilson_ci(k, episodes)
        return {"cheese": k / episodes, "ci": [lo, hi], "top_right": float(r[f"eval/{dist}/top_right_rate"]),
                "length": float(r[f"eval/{dist}/episode_length"])}

    before = make_evaluator(c0, episodes=episodes, distributions=("train", "stock"), progress=progress)(p0, key)
    curve = [{"frames": 0, "fraction": 0.0, "checkpoint": str(original), **rate(before, "stock")}]
    for j in curve_at:
        _, p1, c1 = load_policy(j.path)
        after = make_evaluator(c1, episodes=episodes, distributions=("stock",), progress=progress)(p1, key)
        curve.append({"frames": j.frames, "fraction": j.frames / orig_frames, "checkpoint": str(j.path),
                      **rate(after, "stock")})
    bar, final = rate(before, "train"), curve[-1]
    verdict = me5_verdict(tuple(final["ci"]), bar["cheese"])
    # a finetune stopped well short of the budget cannot contradict "< 10% is enough"; it can still support it
    exhausted = judged.frames >= 0.9 * budget * orig_frames or len(inside) < len(seen)
    if verdict == V.CONTRADICTED and not exhausted:
        verdict = V.INCONCLUSIVE
    res = {"original": str(original), "finetuned": str(judged.path), "episodes": episodes, "seed": seed,
           "original_frames": orig_frames, "whole_lineage": whole, "budget": budget,
           "finetune_frames": judged.frames, "fraction": judged.frames / orig_frames, "original_train": bar,
           "original_stock": curve[0], "finetuned_stock": final, "curve": curve, "verdict": verdict,
           "budget_exhausted": exhausted,
           "checkpoints": [{"path": str(j.path), "frames": j.frames} for j in seen]}
    rep = Report(out_dir, title="mazeagent ME5: finetuning into a pure cheese agent",
                 meta={"original": str(original), "finetuned": str(finetuned), "episodes": episodes, "seed": seed})
    sec = Section("me5", "ME5 — finetuning into a pure cheese agent", res)
    sec.text(f"Cheese and top-right attainment on the stock distribution (cheese anywhere) against the share of the "
             f"original's {orig_frames:,} training frames spent finetuning. The verdict is read at the finetune's "
             f"newest checkpoint within {budget:.0%} ({judged.frames:,} frames, {res['fraction']:.1%}), fixed in "
             f"advance. Bar: the original's cheese rate on its own training distribution, "
             f"{bar['cheese']:.3f}; supported when the Wilson 95% CI lies at/above {1 - ME5_REL_MARGIN:.0%} of it.")
    if not exhausted:
        sec.text("The finetune stopped short of the budget (no checkpoint past it, the last below 90% of it), so "
                 "a miss here cannot contradict ME5; it can only fail to support it (inconclusive).")
    if not whole:
        sec.text("The original checkpoint records only its last training stage, so its frames are undercounted "
                 "and the budget is stricter than 10% of its true compute.")
    sec.table(["Agent", "Frames", "Share of original", "Cheese (stock)", "95% CI", "Top-right", "Mean length"],
              [["original" if c["frames"] == 0 else "finetuned", c["frames"], c["fraction"], c["cheese"], c["ci"],
                c["top_right"], c["length"]] for c in curve]
              + [["original, its training distribution (the bar)", "", "", bar["cheese"], bar["ci"],
                  bar["top_right"], bar["length"]]])
    _plot(rep, sec, curve, bar["cheese"], budget)
    rep.add(sec)
    rep.score(V.scorecard_row("ME5", f"cheese rate anywhere after a finetune on {res['fraction']:.1%} of the "
                              f"original frames (bar {bar['cheese']:.3f})", final["cheese"], tuple(final["ci"]),
                              verdict))
    return rep.write(wandb_mode=wandb_mode)


def _plot(rep: Report, sec: Section, curve: list[dict], bar: float, budget: float) -> None:
    from mazeagent.experiments.report import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = [100 * c["fraction"] for c in curve]
    ax.errorbar(x, [c["cheese"] for c in curve], yerr=[[c["cheese"] - c["ci"][0] for c in curve],
                                                       [c["ci"][1] - c["cheese"] for c in curve]],
                marker="o", label="cheese (stock)")
    ax.plot(x, [c["top_right"] for c in curve], marker="s", label="top-right square (stock)")
    ax.axhline(bar, color="k", ls="--", lw=1, label="original, own distribution")
    ax.axvline(100 * budget, color="grey", ls=":", lw=1)
    ax.set_xlabel("finetune frames, % of the original's"), ax.set_ylim(0, 1), ax.legend(fontsize=7)
    rep.save_figure(sec, fig, "me5_curve", "ME5: attainment on the stock distribution against finetune compute")
