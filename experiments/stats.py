"""Statistics for the behaviour study: L1 logistic regressions over repeated 80/20 splits, VIF, drop-one tests,
Wilson and bootstrap intervals.

Follows the published analysis (docs/research.md §5): factors are z-scored over the whole filtered data set,
an L1 logistic regression (liblinear's estimator, solved for all splits at once by :mod:`mazeagent.experiments.l1logit`) is
fitted on many random 80/20 splits and scored against the majority-class baseline of the same split
(``StatsConfig.solver="liblinear"`` runs sklearn's liblinear itself, one fit at a time, to check the batched solver).
Factors that are exact linear combinations of others (F6 = F4 − F2 in a tree maze) have no identifiable
coefficient in one fit: :func:`reparameterisations` fits every version that leaves one member of the dependence
out, and reduced (drop-one) fits never bring an excluded column back. The coefficient CI is a bootstrap over rows
(refits), so it is what the F-verdicts use; the sign-flip rate (share of splits whose coefficient has the opposite
sign to the mean) is the published robustness check. Rates over squares of the same maze get maze-clustered
bootstrap intervals (:func:`clustered_proportion`), since squares of one maze are not independent.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np


SOLVERS = ("batched", "liblinear")


@dataclass(frozen=True)
class StatsConfig:
    """How hard to resample. Defaults suit a 10k-maze study in well under a minute."""

    n_splits: int = 100  # repeated random train/test splits
    test_frac: float = 0.2
    C: float = 1.0  # inverse L1 strength, sklearn convention
    n_boot: int = 200  # bootstrap refits for coefficient CIs
    alpha: float = 0.05  # two-sided -> 95% intervals
    seed: int = 0
    solver: str = "batched"  # or "liblinear": sklearn's own solver, one fit at a time (slow; a cross-check)

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.n_splits < 1 or self.n_boot < 1:
            raise ValueError(f"n_splits and n_boot must be >= 1, got {self.n_splits}, {self.n_boot}")
        if not 0.0 < self.test_frac < 1.0:
            raise ValueError(f"test_frac must be in (0, 1), got {self.test_frac}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.C <= 0:
            raise ValueError(f"C must be > 0, got {self.C}")


Interval = tuple[float, float]


@dataclass
class RegressionResult:
    """One (single- or multi-factor) regression, summarised over splits; coefficients are per z-scored factor."""

    factors: list[str]
    n: int
    accuracy: float  # mean held-out accuracy
    accuracy_ci: Interval  # percentile interval over splits
    baseline: float  # mean held-out accuracy of predicting the training majority class
    coef: dict[str, float]  # mean coefficient over splits
    coef_ci: dict[str, Interval]  # bootstrap percentile CI (refits on resampled rows)
    sign_flip: dict[str, float]  # share of splits with the opposite sign to the mean coefficient
    intercept: float
    excluded: dict[str, list[str]] = field(default_factory=dict)  # exactly collinear: name -> what it combines
    split_accuracy: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def beats_baseline(self) -> bool:
        return self.accuracy > self.baseline

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("split_accuracy")
        d["beats_baseline"] = self.beats_baseline
        return d


# ---------------------------------------------------------------------------------------------------- intervals


def wilson_ci(k: int, n: int, alpha: float = 0.05) -> Interval:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0 (nothing measured)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    z = _z(alpha)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact at the edges: with k = 0 (k = n) the formula gives centre == half only up to rounding
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def proportion(success: np.ndarray, alpha: float = 0.05) -> dict:
    """Rate, Wilson CI and counts of a boolean array, as a JSON-ready dict."""
    success = np.asarray(success, dtype=bool)
    k, n = int(success.sum()), int(success.size)
    lo, hi = wilson_ci(k, n, alpha)
    return {"rate": k / n if n else math.nan, "ci": (lo, hi), "k": k, "n": n}


def bootstrap_ci(values: np.ndarray, statistic: Callable[[np.ndarray], float] = np.mean, n_boot: int = 1000,
                 alpha: float = 0.05, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over rows of ``values``; (nan, nan) for empty input."""
    values = np.asarray(values)
    if values.shape[0] == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    stats = np.array([statistic(values[i]) for i in idx])
    return (float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2)))


def clustered_proportion(success: np.ndarray, clusters: np.ndarray, n_boot: int = 1000, alpha: float = 0.05,
                         seed: int = 0) -> dict:
    """Pooled rate of ``success`` with a percentile bootstrap CI that resamples whole ``clusters`` (mazes), so
    correlated squares of one maze count as one draw; JSON-ready like :func:`proportion`."""
    success = np.asarray(success, dtype=bool)
    clusters = np.asarray(clusters)
    k, n = int(success.sum()), int(success.size)
    if n == 0:
        return {"rate": math.nan, "ci": (math.nan, math.nan), "k": 0, "n": 0, "clusters": 0}
    _, inv = np.unique(clusters, return_inverse=True)
    m = int(inv.max()) + 1
    hits = np.bincount(inv, weights=success, minlength=m)
    size = np.bincount(inv, minlength=m).astype(float)
    rng = np.random.default_rng(seed)
    rates = []
    for s in range(0, n_boot, 100):  # 100 resamples at a time bounds memory at 100 x clusters
        draw = rng.integers(0, m, size=(min(100, n_boot - s), m))
        rates.append(hits[draw].sum(1) / size[draw].sum(1))
    rates = np.concatenate(rates)
    ci = (float(np.quantile(rates, alpha / 2)), float(np.quantile(rates, 1 - alpha / 2)))
    return {"rate": k / n, "ci": ci, "k": k, "n": n, "clusters": m}


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


# ---------------------------------------------------------------------------------------------------- regressions


def zscore(X: np.ndarray) -> np.ndarray:
    """Column z-scores; a constant column becomes zeros (it carries no information, and must not divide by 0)."""
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _check_xy(X: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y).astype(bool)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    if X.shape[1] != len(names):
        raise ValueError(f"X has {X.shape[1]} columns but {len(names)} factor names were given")
    if not np.isfinite(X).all():
        bad = [names[j] for j in np.where(~np.isfinite(X).all(axis=0))[0]]
        raise ValueError(f"factors contain NaN/inf (filter rows first): {bad}")
    if X.shape[0] < 10 or y.all() or not y.any():
        raise ValueError(f"need >= 10 rows with both outcomes to fit a regression, got n={len(y)}, "
                         f"positives={int(y.sum())}")
    return X, y


def _fit_many(X: np.ndarray, y: np.ndarray, weights: np.ndarray, cfg: StatsConfig
              ) -> tuple[np.ndarray, np.ndarray]:
    """(coef (B, d), intercept (B,)) of liblinear's L1 logistic regression, one fit per row of sample weights."""
    if cfg.solver == "liblinear":
        return _fit_liblinear(X, y, weights, cfg.C)
    from mazeagent.experiments.l1logit import fit_l1_logistic

    coef, icpt, _ = fit_l1_logistic(X, y, weights, cfg.C)
    return coef, icpt


def _fit_liblinear(X: np.ndarray, y: np.ndarray, weights: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """The published estimator run as published: sklearn ``LogisticRegression(penalty="l1", solver="liblinear")``
    with its default tolerance, rows weighted by their count in the split or resample."""
    weights = np.atleast_2d(weights)
    coef, icpt = np.zeros((len(weights), X.shape[1])), np.zeros(len(weights))
    for b, w in enumerate(weights):
        rows = w > 0
        m = liblinear_l1(C, random_state=0)
        m.fit(X[rows], y[rows], sample_weight=w[rows])
        coef[b], icpt[b] = m.coef_[0], m.intercept_[0]
    return coef, icpt


def liblinear_l1(C: float, **kwargs) -> Any:
    """sklearn's L1 logistic regression on liblinear; scikit-learn 1.8 renamed ``penalty="l1"`` to
    ``l1_ratio=1`` (and older versions would silently fit L2 given ``l1_ratio`` alone)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    new = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8)
    return LogisticRegression(solver="liblinear", C=C, **({"l1_ratio": 1.0} if new else {"penalty": "l1"}), **kwargs)


def _splits(n: int, cfg: StatsConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(cfg.seed)
    n_test = max(1, int(round(n * cfg.test_frac)))
    out = []
    for _ in range(cfg.n_splits):
        perm = rng.permutation(n)
        out.append((perm[n_test:], perm[:n_test]))
    return out


COLLINEAR_TOL = 1e-8  # residual / norm below this: a column is an exact linear combination of earlier ones


def collinear_columns(X: np.ndarray, names: list[str], tol: float = COLLINEAR_TOL) -> dict[str, list[str]]:
    """Columns that are exact linear combinations (with an intercept) of earlier kept columns, in column order:
    ``{excluded name: [the kept columns it is a combination of]}``. In a tree maze
    steps(C, T) = steps(C, D) + steps(D, T), so of F2, F4 and F6 the last one is listed."""
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    kept: list[int] = []
    out: dict[str, list[str]] = {}
    for j in range(X.shape[1]):
        col = Xc[:, j]
        norm = np.linalg.norm(col)
        if norm == 0:
            continue  # constant: z-scores to zeros, the fit gives it coefficient 0
        if kept:
            beta, *_ = np.linalg.lstsq(Xc[:, kept], col, rcond=None)
            if np.linalg.norm(col - Xc[:, kept] @ beta) <= tol * norm:
                scale = np.abs(beta) * np.linalg.norm(Xc[:, kept], axis=0) / norm
                out[names[j]] = [names[k] for k, b in zip(kept, scale) if b > 1e-6]
                continue
        kept.append(j)
    return out


def logistic_splits(X: np.ndarray, y: np.ndarray, names: list[str], cfg: StatsConfig = StatsConfig(),
                    standardize: bool = True, bootstrap: bool = True, drop_collinear: bool = True
                    ) -> RegressionResult:
    """L1 logistic regression of ``y`` on the columns of ``X`` over repeated splits, plus bootstrap coefficient CIs
    (``bootstrap=False``: percentile intervals over the splits instead, much cheaper, not used for verdicts).

    Columns that are exact linear combinations of others (:func:`collinear_columns`) have no identifiable
    coefficient: with ``drop_collinear`` they are left out of the fit and listed in ``excluded`` (their coefficient,
    CI and sign-flip rate are NaN). Every split and bootstrap refit is the same estimator as liblinear's
    (:mod:`mazeagent.experiments.l1logit`), fitted all at once. Splits whose training part holds a single class are skipped
    (only possible on tiny data).
    """
    X, y = _check_xy(X, y, names)
    excluded = collinear_columns(X, names) if drop_collinear and X.shape[1] > 1 else {}
    keep = [j for j, n in enumerate(names) if n not in excluded]
    X = X[:, keep]
    if standardize:
        X = zscore(X)
    n = len(y)
    splits = [(tr, te) for tr, te in _splits(n, cfg) if y[tr].any() and not y[tr].all()]
    if not splits:
        raise ValueError("every split had a single-class training set; need more data")
    W = np.zeros((len(splits), n))
    for b, (tr, _) in enumerate(splits):
        W[b, tr] = 1.0
    coefs_a, icpts = _fit_many(X, y, W, cfg)
    accs, bases = [], []
    for (tr, te), c, b0 in zip(splits, coefs_a, icpts):
        accs.append(float(((X[te] @ c + b0 > 0) == y[te]).mean()))
        bases.append(float((y[te] == (y[tr].mean() >= 0.5)).mean()))
    accs_a = np.array(accs)
    mean_coef = coefs_a.mean(axis=0)
    flips = (coefs_a * np.sign(mean_coef)[None, :] < 0).mean(axis=0)

    rng = np.random.default_rng(cfg.seed + 1)
    counts = []
    for _ in range(cfg.n_boot if bootstrap else 0):
        idx = rng.integers(0, n, size=n)
        if y[idx].all() or not y[idx].any():
            continue
        counts.append(np.bincount(idx, minlength=n))  # a resample = the same rows, counted
    boot_a = _fit_many(X, y, np.array(counts, np.float64), cfg)[0] if counts else coefs_a
    lo = np.quantile(boot_a, cfg.alpha / 2, axis=0)
    hi = np.quantile(boot_a, 1 - cfg.alpha / 2, axis=0)
    q = (cfg.alpha / 2, 1 - cfg.alpha / 2)
    kept_names = [names[j] for j in keep]
    nan = float("nan")
    coef = {n: float(c) for n, c in zip(kept_names, mean_coef)}
    coef_ci = {n: (float(a), float(b)) for n, a, b in zip(kept_names, lo, hi)}
    flip = {n: float(f) for n, f in zip(kept_names, flips)}
    return RegressionResult(
        factors=list(names), n=int(n),
        accuracy=float(accs_a.mean()),
        accuracy_ci=(float(np.quantile(accs_a, q[0])), float(np.quantile(accs_a, q[1]))),
        baseline=float(np.mean(bases)),
        coef={nm: coef.get(nm, nan) for nm in names},
        coef_ci={nm: coef_ci.get(nm, (nan, nan)) for nm in names},
        sign_flip={nm: flip.get(nm, nan) for nm in names},
        intercept=float(np.mean(icpts)),
        excluded=excluded,
        split_accuracy=accs_a,
    )


def single_factor(X: np.ndarray, y: np.ndarray, names: list[str], cfg: StatsConfig = StatsConfig()
                  ) -> dict[str, RegressionResult]:
    """One regression per factor (the published single-variable table; split intervals, no bootstrap)."""
    X = np.asarray(X, dtype=np.float64)
    return {name: logistic_splits(X[:, [j]], y, [name], cfg, bootstrap=False) for j, name in enumerate(names)}


def drop_one(X: np.ndarray, y: np.ndarray, names: list[str], cfg: StatsConfig = StatsConfig(),
             full: RegressionResult | None = None) -> dict[str, dict]:
    """Held-out accuracy with each factor of ``full`` left out, on the same splits (paired differences).

    The reduced fit keeps exactly the full fit's other columns: a column the full fit excluded as collinear stays
    out, or dropping F2 would bring F6 = F4 − F2 back and restore the same information (Δ ≈ 0 by construction).
    ``delta`` = full − reduced accuracy: a factor that matters has a positive delta whose CI excludes 0.
    """
    X = np.asarray(X, dtype=np.float64)
    full = full or logistic_splits(X, y, names, cfg)
    kept = [k for k, n in enumerate(names) if n not in full.excluded]
    out: dict[str, dict] = {n: {"excluded": f"exact linear combination of {', '.join(c)}"}
                            for n, c in full.excluded.items()}
    if len(kept) < 2:
        return out
    q = (cfg.alpha / 2, 1 - cfg.alpha / 2)
    for j in kept:
        keep = [k for k in kept if k != j]
        res = logistic_splits(X[:, keep], y, [names[k] for k in keep], cfg, bootstrap=False, drop_collinear=False)
        k = min(len(full.split_accuracy), len(res.split_accuracy))
        diff = full.split_accuracy[:k] - res.split_accuracy[:k]
        out[names[j]] = {"accuracy": res.accuracy, "delta": float(diff.mean()),
                         "delta_ci": (float(np.quantile(diff, q[0])), float(np.quantile(diff, q[1])))}
    return out


def reparameterisations(X: np.ndarray, y: np.ndarray, names: list[str], cfg: StatsConfig = StatsConfig()
                        ) -> dict[str, RegressionResult]:
    """The multi-factor fit once per member of the exact linear dependences, each leaving that member out:
    ``{left-out name: fit}`` (``{"": fit}`` when the columns are independent). With F4 = F2 + F6, "the F4
    coefficient controlling for the others" depends on which of the three is left out, so no single fit may
    resolve F2, F4 or F6; the fits are reparameterisations of one model and resolve only what they agree on."""
    X = np.asarray(X, dtype=np.float64)
    excluded = collinear_columns(X, names) if X.shape[1] > 1 else {}
    if not excluded:
        return {"": logistic_splits(X, y, names, cfg)}
    members = {n for e, combo in excluded.items() for n in (e, *combo)}
    out = {}
    for g in [n for n in names if n in members]:
        keep = [j for j, n in enumerate(names) if n != g]
        out[g] = logistic_splits(X[:, keep], y, [names[j] for j in keep], cfg)
    return out


VIF_INF = 1e8  # above this a factor is an exact linear combination of the others (reported as inf)


def vif(X: np.ndarray, names: list[str]) -> dict[str, float]:
    """Variance inflation factors (statsmodels, with an intercept column); > 5 flags collinearity, inf an exact
    linear dependence (in a tree maze steps(C, T) = steps(C, D) + steps(D, T))."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] != len(names):
        raise ValueError(f"X has {X.shape[1]} columns but {len(names)} names were given")
    design = np.column_stack([np.ones(len(X)), X])
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exact collinearity is a finding (VIF = inf), not a warning to print
        out = {name: float(variance_inflation_factor(design, j + 1)) for j, name in enumerate(names)}
    return {k: (math.inf if v > VIF_INF else v) for k, v in out.items()}


def correlation(X: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """Pearson correlation matrix as nested dicts (JSON-ready)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.corrcoef(np.asarray(X, dtype=np.float64), rowvar=False)
    c = np.atleast_2d(c)
    return {a: {b: float(c[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)}


def fmt(x: Any, digits: int = 3) -> str:
    """The one number format of the report (results.json holds the unrounded value)."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return "—" if not math.isfinite(float(x)) else f"{float(x):.{digits}f}"
    if isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(v, (int, float, np.floating)) for v in x):
        return f"[{fmt(x[0], digits)}, {fmt(x[1], digits)}]"
    return str(x)
