"""Statistics for the behaviour study: L1 logistic regressions over repeated 80/20 splits, VIF, drop-one tests,
Wilson and bootstrap intervals.

Follows the published analysis (research-notes §1.8, §3.2): factors are z-scored over the whole filtered data set,
an L1 logistic regression (liblinear) is fitted on many random 80/20 splits and scored against the majority-class
baseline of the same split. The coefficient CI is a bootstrap over rows (refits), so it is what the F-verdicts use;
the sign-flip rate (share of splits whose coefficient has the opposite sign to the mean) is the published
robustness check.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class StatsConfig:
    """How hard to resample. Defaults suit a 10k-maze study in well under a minute."""

    n_splits: int = 100  # repeated random train/test splits
    test_frac: float = 0.2
    C: float = 1.0  # inverse L1 strength, sklearn convention
    n_boot: int = 200  # bootstrap refits for coefficient CIs
    alpha: float = 0.05  # two-sided -> 95% intervals
    seed: int = 0

    def __post_init__(self) -> None:
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
    return (max(0.0, centre - half), min(1.0, centre + half))


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


def _fit(X: np.ndarray, y: np.ndarray, C: float):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(penalty="l1", solver="liblinear", C=C, random_state=0)  # liblinear shuffles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # liblinear convergence chatter on separable toy data
        model.fit(X, y)
    return model


def _splits(n: int, cfg: StatsConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(cfg.seed)
    n_test = max(1, int(round(n * cfg.test_frac)))
    out = []
    for _ in range(cfg.n_splits):
        perm = rng.permutation(n)
        out.append((perm[n_test:], perm[:n_test]))
    return out


def logistic_splits(X: np.ndarray, y: np.ndarray, names: list[str], cfg: StatsConfig = StatsConfig(),
                    standardize: bool = True, bootstrap: bool = True) -> RegressionResult:
    """L1 logistic regression of ``y`` on the columns of ``X`` over repeated splits, plus bootstrap coefficient CIs
    (``bootstrap=False``: percentile intervals over the splits instead, much cheaper, not used for verdicts).

    Splits whose training part holds a single class are skipped (only possible on tiny data).
    """
    X, y = _check_xy(X, y, names)
    if standardize:
        X = zscore(X)
    accs, bases, coefs, icpts = [], [], [], []
    for train, test in _splits(len(y), cfg):
        if y[train].all() or not y[train].any():
            continue
        m = _fit(X[train], y[train], cfg.C)
        accs.append(float((m.predict(X[test]) == y[test]).mean()))
        majority = y[train].mean() >= 0.5
        bases.append(float((y[test] == majority).mean()))
        coefs.append(m.coef_[0].copy())
        icpts.append(float(m.intercept_[0]))
    if not accs:
        raise ValueError("every split had a single-class training set; need more data")
    accs_a, coefs_a = np.array(accs), np.array(coefs)
    mean_coef = coefs_a.mean(axis=0)
    flips = (coefs_a * np.sign(mean_coef)[None, :] < 0).mean(axis=0)

    rng = np.random.default_rng(cfg.seed + 1)
    boot = []
    for _ in range(cfg.n_boot if bootstrap else 0):
        idx = rng.integers(0, len(y), size=len(y))
        if y[idx].all() or not y[idx].any():
            continue
        boot.append(_fit(X[idx], y[idx], cfg.C).coef_[0])
    boot_a = np.array(boot) if boot else coefs_a
    lo = np.quantile(boot_a, cfg.alpha / 2, axis=0)
    hi = np.quantile(boot_a, 1 - cfg.alpha / 2, axis=0)
    q = (cfg.alpha / 2, 1 - cfg.alpha / 2)
    return RegressionResult(
        factors=list(names), n=int(len(y)),
        accuracy=float(accs_a.mean()),
        accuracy_ci=(float(np.quantile(accs_a, q[0])), float(np.quantile(accs_a, q[1]))),
        baseline=float(np.mean(bases)),
        coef={n: float(c) for n, c in zip(names, mean_coef)},
        coef_ci={n: (float(a), float(b)) for n, a, b in zip(names, lo, hi)},
        sign_flip={n: float(f) for n, f in zip(names, flips)},
        intercept=float(np.mean(icpts)),
        split_accuracy=accs_a,
    )


def single_factor(X: np.ndarray, y: np.ndarray, names: list[str], cfg: StatsConfig = StatsConfig()
                  ) -> dict[str, RegressionResult]:
    """One regression per factor (the published single-variable table; split intervals, no bootstrap)."""
    X = np.asarray(X, dtype=np.float64)
    return {name: logistic_splits(X[:, [j]], y, [name], cfg, bootstrap=False) for j, name in enumerate(names)}


def drop_one(X: np.ndarray, y: np.ndarray, names: list[str], cfg: StatsConfig = StatsConfig(),
             full: RegressionResult | None = None) -> dict[str, dict]:
    """Held-out accuracy with each factor left out, on the same splits as the full model (paired differences).

    ``delta`` = full − dropped accuracy: a factor that matters has a positive delta whose CI excludes 0.
    """
    X = np.asarray(X, dtype=np.float64)
    if len(names) < 2:
        return {}
    full = full or logistic_splits(X, y, names, cfg)
    out = {}
    for j, name in enumerate(names):
        keep = [k for k in range(len(names)) if k != j]
        res = logistic_splits(X[:, keep], y, [names[k] for k in keep], cfg, bootstrap=False)
        k = min(len(full.split_accuracy), len(res.split_accuracy))
        diff = full.split_accuracy[:k] - res.split_accuracy[:k]
        q = (cfg.alpha / 2, 1 - cfg.alpha / 2)
        out[name] = {"accuracy": res.accuracy, "delta": float(diff.mean()),
                     "delta_ci": (float(np.quantile(diff, q[0])), float(np.quantile(diff, q[1])))}
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
