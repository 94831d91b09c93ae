"""The preregistered predictions as data, the rules that resolve them, and Brier scores.

The rules are stated in full in docs/predictions.md; this module is their one implementation:

* F1–F10 ("closer/shorter → more cheese"): the factor's coefficient in the multi-factor L1 regression has the
  predicted sign (negative) with its 95% CI excluding 0 → supported; the opposite sign with the CI excluding 0 →
  contradicted; else inconclusive. Exactly collinear factors (F2, F4, F6) are fitted in every reparameterisation
  that leaves one of them out, and resolve only where those fits agree (:func:`agreed`).
* Thresholds ("less than 30%"): the CI lies wholly below → supported; wholly at/above → contradicted. A claim with
  several defensible readings (B1's "away from the top-right") resolves only when every reading agrees.
* F11: the CI of the mean change in P(first move toward cheese) after lengthening the legal-steps distance lies
  wholly below 0 → contradicted; inside ±``F11_REL_MARGIN`` × the unedited mean P(cheese move) → supported.
* Existence claims ("can", "there exist"): a demonstration supports; none found after a search is "not
  demonstrated" (no Brier) unless the search was exhaustive by construction (:func:`existence_verdict`).

A Brier score exists only for a credence whose prediction resolved: (credence − outcome)², outcome 1 when
supported and 0 when contradicted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["supported", "contradicted", "inconclusive", "not measured", "not demonstrated"]
SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "supported", "contradicted", "inconclusive", "not measured"
NOT_DEMONSTRATED = "not demonstrated"  # an existence claim whose non-exhaustive search found no demonstration
NOT_MEASURABLE = "not measurable"  # a sub-claim our data cannot separate from another (B2's left-wall distance)
NO_FORECAST = "measured (no forecast)"  # U1-U3: a number to report, nothing to resolve
RESOLVED = (SUPPORTED, CONTRADICTED)
# F11: |mean change in P(cheese move)| below this share of the unedited mean counts as "no effect of practical size"
F11_REL_MARGIN = 0.10
B1_THRESHOLD = 0.30


@dataclass(frozen=True)
class Prediction:
    id: str
    question: str
    answer: str  # the forecaster's stated answer, in our words
    credence: float | None = None  # probability the forecaster gave that ``answer`` is right
    sign: int = -1  # F-factors: predicted sign of the distance coefficient
    section: str = "behaviour"  # which study section measures it


_F = "In a large batch of random mazes, controlling for the other factors, the mouse is more likely to take the cheese the closer/shorter: "
PREDICTIONS: list[Prediction] = [
    Prediction("B1", "How does the policy generalise when the cheese can be anywhere?",
               "A hard-coded up-and-right tendency: cheese in the two quadrants away from the top-right is reached "
               "less than 30% of the time."),
    Prediction("B2", "Which level attributes strongly change P(agent reaches cheese)?",
               "Smaller mazes → more; mouse nearer the left wall → slightly more; cheese nearer (L2) the edges of "
               "the top-right quadrant → more; cheese reachable by only up/right moves → more."),
    Prediction("F1", _F + "cheese ↔ decision square, Euclidean", "closer → more cheese", 0.70),
    Prediction("F2", _F + "cheese ↔ decision square, steps", "shorter → more cheese", 0.73),
    Prediction("F3", _F + "cheese ↔ top-right free square, Euclidean", "closer → more cheese", 0.90),
    Prediction("F4", _F + "cheese ↔ top-right free square, steps", "shorter → more cheese", 0.92),
    Prediction("F5", _F + "decision square ↔ top-right free square, Euclidean", "closer → more cheese", 0.35),
    Prediction("F6", _F + "decision square ↔ top-right free square, steps", "shorter → more cheese", 0.32),
    Prediction("F7", _F + "minimal steps cheese → top-right 5×5 region", "shorter → more cheese", 0.82),
    Prediction("F8", _F + "minimal Euclidean distance cheese → top-right 5×5 region", "closer → more cheese", 0.80),
    Prediction("F9", _F + "minimal steps decision square → top-right 5×5 region", "shorter → more cheese", 0.40),
    Prediction("F10", _F + "minimal Euclidean distance decision square → top-right 5×5 region",
               "closer → more cheese", 0.40),
    Prediction("F11", "Is any predictive power of steps(decision square, cheese) only an artifact of needing a "
               "shorter chain of correct stochastic moves?", "yes (artifact)", 0.40),
    *[Prediction(f"ME1@{x}", f"Patching activations can cut cheese acquisition by {x}% (proportionally) while "
                 "top-right attainment drops by at most 25% proportionally, in mazes with a decision square",
                 "possible", c, section="patching") for x, c in ((50, 0.85), (70, 0.80), (90, 0.66), (99, 0.60))],
    Prediction("ME2", "At the first residual add of IMPALA block 2, linear probes recover the cheese position "
               "(Cartesian coordinates) with > 70% accuracy", "(no number given)", section="probes"),
    Prediction("ME3", "The policy contains ≥ 2 sub-policies 'in combination', one roughly for cheese, one for the "
               "top-right corner", "yes, if 'roughly' means 'only when the cheese is near the top-right'", 0.85,
               section="patching"),
    Prediction("ME4", "RL-finetuning is more promising than editing the network", "(no number given)",
               section="finetuning"),
    Prediction("ME5", "The network can easily be finetuned into a pure cheese agent with < 10% of the original "
               "training compute", "(no number given)", section="finetuning"),
    *[Prediction(f"ME6@{x}", "In ≥ 75% of random mazes the agent can be retargeted to a range of destinations by "
                 f"hand-editing at most {x}% of activations", "possible", c, section="retargeting")
      for x, c in (("0.01", 0.40), ("0.1", 0.62), ("1", 0.65), ("10", 0.80))],
    Prediction("ME6@impossible", "Retargeting as in ME6 is not possible", "not possible", 0.20, section="retargeting"),
    Prediction("IG1", "A single 'mesa objective' that it plans over", "(none)", section="patching"),
    Prediction("IG2", "Several contextually activated goals", "(none)", section="patching"),
    Prediction("IG3", "Something weirder than both", "(none)", section="patching"),
    Prediction("O1", "Some decision-steering influences are stored obviously interpretably (a positive activation "
               "where the agent 'tries' to go; editing it changes where it goes)", "yes, in some situations", 0.90,
               section="retargeting"),
    Prediction("O2", "A substantial number of trivially interpretable conv channels after the first IMPALA block",
               "yes (80% that there are at least 5)", 0.55, section="probes"),
    Prediction("O3", "Policy influences are roughly disjoint from capabilities: one can change where the agent goes "
               "without hurting its maze solving", "(none)", section="retargeting"),
    Prediction("U1", "How often is the policy's argmax the value-maximising move at decision squares?", "—",
               section="conformity"),
    Prediction("U2", "How often is the policy's argmax the value-maximising move at all squares?", "—",
               section="conformity"),
    Prediction("U3", "How often is the policy's argmax the value-maximising move inside the training 5×5 region?",
               "—", section="conformity"),
]
BY_ID = {p.id: p for p in PREDICTIONS}
_FS = {"F1": "Euclid(cheese, D)", "F2": "steps(cheese, D)", "F3": "Euclid(cheese, top-right)",
       "F4": "steps(cheese, top-right)", "F5": "Euclid(D, top-right)", "F6": "steps(D, top-right)",
       "F7": "steps(cheese, 5×5)", "F8": "Euclid(cheese, 5×5)", "F9": "steps(D, 5×5)", "F10": "Euclid(D, 5×5)"}
# The claim in a few words, for the compact scorecard (the full question is folded below it).
SHORT_CLAIMS = {
    "B1": "cheese away from the top-right reached < 30%",
    "B2": "smaller maze, cheese near top-right quadrant, up/right-reachable → more cheese",
    **{f: f"smaller {d} → more cheese" for f, d in _FS.items()},
    "F11": "steps effect only a stochastic-chain artifact",
    **{f"ME1@{x}": f"a patch cuts cheese ≥ {x}%, top-right ≤ 25%" for x in (50, 70, 90, 99)},
    "ME2": "block-2 probe gets cheese (x, y) > 70%",
    "ME3": "≥ 2 sub-policies: cheese (near top-right only) + top-right",
    "ME4": "RL-finetuning beats editing",
    "ME5": "cheap finetune to a pure cheese agent",
    **{f"ME6@{x}": f"retarget ≥ 75% of mazes editing ≤ {x}% of activations" for x in ("0.01", "0.1", "1", "10")},
    "ME6@impossible": "retargeting by hand-editing is impossible",
    "IG1": "one mesa objective", "IG2": "several contextual goals", "IG3": "something weirder",
    "O1": "a positive activation steers where the agent goes",
    "O2": "many trivially interpretable channels (≥ 5)",
    "O3": "steering without hurting maze solving",
    "U1": "argmax = value-best move, decision squares",
    "U2": "argmax = value-best move, all squares",
    "U3": "argmax = value-best move, top-right 5×5",
}


def _finite(ci: tuple[float, float]) -> bool:
    return ci is not None and all(isinstance(v, (int, float)) and math.isfinite(v) for v in ci)


def sign_verdict(ci: tuple[float, float], predicted_sign: int = -1) -> Verdict:
    """Supported when the CI lies strictly on the predicted side of 0, contradicted when strictly on the other."""
    if predicted_sign not in (-1, 1):
        raise ValueError(f"predicted_sign must be -1 or +1, got {predicted_sign}")
    if not _finite(ci):
        return INCONCLUSIVE
    lo, hi = ci
    if lo > hi:
        raise ValueError(f"CI lower bound {lo} exceeds upper bound {hi}")
    if predicted_sign * lo > 0 and predicted_sign * hi > 0:
        return SUPPORTED
    if predicted_sign * lo < 0 and predicted_sign * hi < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def below_verdict(ci: tuple[float, float], threshold: float) -> Verdict:
    """For "the rate is less than ``threshold``": supported iff CI upper < threshold; contradicted iff lower >= it."""
    if not _finite(ci):
        return INCONCLUSIVE
    lo, hi = ci
    if hi < threshold:
        return SUPPORTED
    if lo >= threshold:
        return CONTRADICTED
    return INCONCLUSIVE


def artifact_verdict(delta_ci: tuple[float, float], baseline: float, rel_margin: float = F11_REL_MARGIN
                     ) -> Verdict:
    """F11: ``delta_ci`` is the CI of the mean change in P(first move toward cheese) after lengthening steps, and
    ``baseline`` the unedited mean P(cheese move). The equivalence margin scales with the baseline: a 0.02 change is
    large for a policy that moves toward the cheese 5% of the time and negligible for one at 90%."""
    if not _finite(delta_ci) or not (isinstance(baseline, (int, float)) and math.isfinite(baseline)):
        return INCONCLUSIVE
    if not 0.0 <= baseline <= 1.0 or rel_margin <= 0:
        raise ValueError(f"need a probability baseline and a positive margin, got {baseline}, {rel_margin}")
    lo, hi = delta_ci
    margin = rel_margin * baseline
    if hi < 0:
        return CONTRADICTED
    if lo > -margin and hi < margin:
        return SUPPORTED
    return INCONCLUSIVE


def agreed(readings: list[Verdict]) -> Verdict:
    """One verdict for several defensible readings (or fits) of a claim: theirs if all agree, else inconclusive;
    inconclusive when there is none (nothing identifiable to resolve)."""
    readings = list(readings)
    return readings[0] if readings and all(v == readings[0] for v in readings) else INCONCLUSIVE


def existence_verdict(demonstrated: bool, exhaustive: bool = False) -> Verdict:
    """"Can" / "there exist" claims: a demonstration supports; finding none is "not demonstrated" (no Brier)
    unless the search covered every candidate by construction, when it contradicts. A claim of impossibility
    (ME6@impossible) is the complement: contradicted by any demonstration, supported only by an exhaustive search."""
    if demonstrated:
        return SUPPORTED
    return CONTRADICTED if exhaustive else NOT_DEMONSTRATED


def brier(credence: float | None, verdict: Verdict) -> float | None:
    """(credence − outcome)² for a resolved prediction, else None."""
    if credence is None or verdict not in RESOLVED:
        return None
    if not 0.0 <= credence <= 1.0:
        raise ValueError(f"credence must be a probability, got {credence}")
    outcome = 1.0 if verdict == SUPPORTED else 0.0
    return (credence - outcome) ** 2


def brier_summary(rows: list[dict]) -> dict:
    """Mean Brier score over rows that carry one (each row: a scorecard entry with a ``brier`` key)."""
    scores = [r["brier"] for r in rows if r.get("brier") is not None]
    return {"mean": sum(scores) / len(scores) if scores else None, "n_resolved": len(scores),
            "n_with_credence": sum(1 for r in rows if r.get("credence") is not None)}


def calibration(rows: list[dict], edges: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)) -> dict:
    """Credences against resolved outcomes: the points, and per credence bin the share supported (Wilson CI)."""
    from mazeagent.experiments.stats import wilson_ci

    pts = [{"id": r["id"], "credence": r["credence"], "outcome": int(r["verdict"] == SUPPORTED)}
           for r in rows if r.get("credence") is not None and r["verdict"] in RESOLVED]
    bins = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        inside = [p for p in pts if lo <= p["credence"] < hi or (k == len(edges) - 2 and p["credence"] == hi)]
        if inside:
            hits = sum(p["outcome"] for p in inside)
            bins.append({"lo": lo, "hi": hi, "n": len(inside), "rate": hits / len(inside),
                         "mean_credence": sum(p["credence"] for p in inside) / len(inside),
                         "ci": wilson_ci(hits, len(inside))})
    return {"points": pts, "bins": bins}


def scorecard_row(pid: str, measured: str, value: float | None, ci: tuple[float, float] | None,
                  verdict: Verdict, **extra) -> dict:
    """One report row: question, short claim, credence, measured value with CI, the published counterpart,
    verdict, Brier score."""
    from mazeagent.experiments import published

    p = BY_ID[pid]
    pub = published.for_prediction(pid)
    row = {"id": pid, "short": SHORT_CLAIMS.get(pid, p.question), "question": p.question, "answer": p.answer,
           "credence": p.credence, "measured": measured, "value": value,
           "ci": list(ci) if ci is not None else None, "verdict": verdict, "brier": brier(p.credence, verdict),
           "published": pub.value if pub else None, "published_source": pub.source if pub else None}
    row.update(extra)
    return row
