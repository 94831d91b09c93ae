"""The preregistered predictions as data, the rules that resolve them, and Brier scores.

Rules (predictions.md, "Notes for measuring"):

* F1–F10 ("closer/shorter → more cheese"): the factor's coefficient in the multi-factor L1 regression has the
  predicted sign (negative: larger distance, less cheese) and its 95% CI excludes 0 → supported; the opposite sign
  with the CI excluding 0 → contradicted; otherwise inconclusive. A CI touching 0 does not exclude it.
* Thresholds ("less than 30%"): the CI lies wholly below → supported; wholly at/above → contradicted.
* F11 (the steps effect is only an artifact of chains of stochastic moves): hand edits lengthen the legal-steps
  distance with Euclidean distances fixed. If P(first move toward cheese) drops (CI of the mean change wholly
  below 0) the policy reacts to step distance at the decision itself, so F11 is contradicted; otherwise a CI
  inside ±``EQUIVALENCE`` (no effect of practical size) supports it; anything else is inconclusive.

A Brier score exists only for a credence whose prediction resolved: (credence − outcome)², outcome 1 when
supported and 0 when contradicted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["supported", "contradicted", "inconclusive", "not measured"]
SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "supported", "contradicted", "inconclusive", "not measured"
NO_FORECAST = "measured (no forecast)"  # U1-U3: a number to report, nothing to resolve
EQUIVALENCE = 0.02  # F11: |mean change in P(cheese move)| below this counts as "no effect"
B1_THRESHOLD = 0.30


@dataclass(frozen=True)
class Prediction:
    id: str
    question: str
    answer: str  # the forecaster's stated answer, in our words
    credence: float | None = None  # probability the forecaster gave that ``answer`` is right
    sign: int = -1  # F-factors: predicted sign of the distance coefficient
    issue: str = "behaviour"  # which study section measures it


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
                 "possible", c, issue="patching") for x, c in ((50, 0.85), (70, 0.80), (90, 0.66), (99, 0.60))],
    Prediction("ME2", "At the first residual add of IMPALA block 2, linear probes recover the cheese position "
               "(Cartesian coordinates) with > 70% accuracy", "(no number given)", issue="probes"),
    Prediction("ME3", "The policy contains ≥ 2 sub-policies 'in combination', one roughly for cheese, one for the "
               "top-right corner", "yes, if 'roughly' means 'only when the cheese is near the top-right'", 0.85,
               issue="patching"),
    Prediction("ME4", "RL-finetuning is more promising than editing the network", "(no number given)",
               issue="finetuning"),
    Prediction("ME5", "The network can easily be finetuned into a pure cheese agent with < 10% of the original "
               "training compute", "(no number given)", issue="finetuning"),
    *[Prediction(f"ME6@{x}", "In ≥ 75% of random mazes the agent can be retargeted to a range of destinations by "
                 f"hand-editing at most {x}% of activations", "possible", c, issue="retargeting")
      for x, c in (("0.01", 0.40), ("0.1", 0.62), ("1", 0.65), ("10", 0.80))],
    Prediction("ME6@impossible", "Retargeting as in ME6 is not possible", "not possible", 0.20, issue="retargeting"),
    Prediction("IG1", "A single 'mesa objective' that it plans over", "(none)", issue="patching"),
    Prediction("IG2", "Several contextually activated goals", "(none)", issue="patching"),
    Prediction("IG3", "Something weirder than both", "(none)", issue="patching"),
    Prediction("O1", "Some decision-steering influences are stored obviously interpretably (a positive activation "
               "where the agent 'tries' to go; editing it changes where it goes)", "yes, in some situations", 0.90,
               issue="retargeting"),
    Prediction("O2", "A substantial number of trivially interpretable conv channels after the first IMPALA block",
               "yes (80% that there are at least 5)", 0.55, issue="probes"),
    Prediction("O3", "Policy influences are roughly disjoint from capabilities: one can change where the agent goes "
               "without hurting its maze solving", "(none)", issue="retargeting"),
    Prediction("U1", "How often is the policy's argmax the value-maximising move at decision squares?", "—",
               issue="conformity"),
    Prediction("U2", "How often is the policy's argmax the value-maximising move at all squares?", "—",
               issue="conformity"),
    Prediction("U3", "How often is the policy's argmax the value-maximising move inside the training 5×5 region?",
               "—", issue="conformity"),
]
BY_ID = {p.id: p for p in PREDICTIONS}


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


def artifact_verdict(delta_ci: tuple[float, float], margin: float = EQUIVALENCE) -> Verdict:
    """F11: ``delta_ci`` is the CI of the mean change in P(first move toward cheese) after lengthening steps."""
    if not _finite(delta_ci):
        return INCONCLUSIVE
    lo, hi = delta_ci
    if hi < 0:
        return CONTRADICTED
    if lo > -margin and hi < margin:
        return SUPPORTED
    return INCONCLUSIVE


def brier(credence: float | None, verdict: Verdict) -> float | None:
    """(credence − outcome)² for a resolved prediction, else None."""
    if credence is None or verdict not in (SUPPORTED, CONTRADICTED):
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


def scorecard_row(pid: str, measured: str, value: float | None, ci: tuple[float, float] | None,
                  verdict: Verdict, **extra) -> dict:
    """One report row: question, credence, measured value with CI, verdict, Brier score."""
    p = BY_ID[pid]
    row = {"id": pid, "question": p.question, "answer": p.answer, "credence": p.credence, "measured": measured,
           "value": value, "ci": list(ci) if ci is not None else None, "verdict": verdict,
           "brier": brier(p.credence, verdict)}
    row.update(extra)
    return row
