"""Linear probes on activation datasets: logistic (classes) and ridge (numbers), dense or sparse (top-K features by
an F-test, as circrl's ``sparse_linear_probe``), and convolutional (one sample per spatial cell, features = channels:
"is the cheese in this cell?").

Every probe is scored on **held-out mazes** (rows are split by maze, so no maze is in both halves) and reported with
a 95% CI and two chance levels: the best constant guess learnt on the training half, and the same probe refit on
shuffled training labels. A probe "knows" something only if it beats both.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from mazeagent.experiments.stats import bootstrap_ci, wilson_ci

KINDS = ("logistic", "ridge")
ME2_THRESHOLD = 0.70


@dataclass
class ProbeResult:
    kind: str
    metric: str  # "accuracy" (logistic) or "r2" (ridge)
    score: float  # held-out
    ci: tuple[float, float]
    chance: float  # constant predictor fit on the training half
    shuffled: float | None  # same probe refit on shuffled training labels
    n_train: int
    n_test: int
    features: list[int] | None = None  # top-K feature indices, when sparse

    @property
    def beats_chance(self) -> bool:
        return self.ci[0] > max(self.chance, self.shuffled if self.shuffled is not None else -np.inf)

    def to_dict(self) -> dict:
        return asdict(self) | {"beats_chance": self.beats_chance}


def group_split(groups: np.ndarray, test_frac: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` with whole groups (mazes) on one side."""
    if not 0 < test_frac < 1:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}")
    uniq = np.unique(groups)
    if len(uniq) < 2:
        raise ValueError(f"need at least 2 mazes to hold some out, got {len(uniq)}")
    rng = np.random.default_rng(seed)
    n_test = min(len(uniq) - 1, max(1, int(round(test_frac * len(uniq)))))
    test_groups = rng.choice(uniq, size=n_test, replace=False)
    is_test = np.isin(groups, test_groups)
    return np.nonzero(~is_test)[0], np.nonzero(is_test)[0]


def top_k_features(X: np.ndarray, y: np.ndarray, k: int, kind: str = "logistic") -> np.ndarray:
    """Indices of the ``k`` features with the largest F statistic (ANOVA for classes, regression for numbers)."""
    from sklearn.feature_selection import f_classif, f_regression

    if not 1 <= k <= X.shape[1]:
        raise ValueError(f"top_k must be in [1, {X.shape[1]}], got {k}")
    import warnings

    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Features ", category=UserWarning)
        f, _ = (f_classif if kind == "logistic" else f_regression)(X, y)
    return np.argsort(-np.nan_to_num(f, nan=-1.0), kind="stable")[:k]


def _fit_predict(kind: str, C: float, alpha: float, X: np.ndarray, y: np.ndarray, Xt: np.ndarray) -> np.ndarray:
    """Fit and predict; many coordinate classes for few samples is expected here, so sklearn's hint is muted."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
        return _model(kind, C, alpha).fit(X, y).predict(Xt)


def _model(kind: str, C: float, alpha: float) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":  # 500 lbfgs iterations stopped short on the 8,192 dense features
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha))


def _score(kind: str, y: np.ndarray, pred: np.ndarray) -> float:
    if kind == "logistic":
        return float((y == pred).mean())
    ss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")


def _ci(kind: str, y: np.ndarray, pred: np.ndarray, seed: int) -> tuple[float, float]:
    if kind == "logistic":
        return wilson_ci(int((y == pred).sum()), len(y))
    return bootstrap_ci(np.stack([y, pred], 1), lambda a: _score("ridge", a[:, 0], a[:, 1]), n_boot=300, seed=seed)


def fit_probe(X: np.ndarray, y: np.ndarray, kind: str = "logistic", groups: np.ndarray | None = None,
              top_k: int | None = None, test_frac: float = 0.2, seed: int = 0, C: float = 1.0, alpha: float = 1.0,
              shuffle_control: bool = True) -> ProbeResult:
    """Fit on the training mazes, score on held-out mazes. ``X``: (N, ...) features (flattened); ``y``: (N,)
    labels; ``groups``: (N,) maze ids (default: every row its own maze)."""
    if kind not in KINDS:
        raise ValueError(f"probe kind must be one of {KINDS}, got {kind!r}")
    X = np.asarray(X, np.float32).reshape(len(X), -1)
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    tr, te = group_split(groups, test_frac, seed)
    feats = None
    if top_k is not None:
        feats = top_k_features(X[tr], y[tr], top_k, kind)
        X = X[:, feats]
    if kind == "logistic" and len(np.unique(y[tr])) < 2:
        const = y[tr][0]
        pred = np.full(len(te), const)
        s = _score(kind, y[te], pred)
        return ProbeResult(kind, "accuracy", s, _ci(kind, y[te], pred, seed), s, s, len(tr), len(te),
                           None if feats is None else feats.tolist())
    pred = _fit_predict(kind, C, alpha, X[tr], y[tr], X[te])
    if kind == "logistic":
        vals, counts = np.unique(y[tr], return_counts=True)
        chance = _score(kind, y[te], np.full(len(te), vals[np.argmax(counts)]))
    else:
        chance = _score(kind, y[te], np.full(len(te), y[tr].mean()))
    shuffled = None
    if shuffle_control:
        perm = np.random.default_rng(seed + 1).permutation(y[tr])
        shuffled = _score(kind, y[te], _fit_predict(kind, C, alpha, X[tr], perm, X[te]))
    return ProbeResult(kind, "accuracy" if kind == "logistic" else "r2", _score(kind, y[te], pred),
                       _ci(kind, y[te], pred, seed), chance, shuffled, len(tr), len(te),
                       None if feats is None else feats.tolist())


def conv_probe(acts: np.ndarray, cells: np.ndarray, groups: np.ndarray, top_k: int | None = None, seed: int = 0,
               test_frac: float = 0.2, negatives_per_positive: int = 1) -> ProbeResult:
    """"Is the cheese in this activation cell?" from the channels at that cell. ``acts`` (N, H, W, C), ``cells``
    (N, 2) image-order cheese cells. Each example gives its cheese cell (positive) and random other cells
    (negatives), so chance is about 1 / (1 + negatives_per_positive)."""
    acts = np.asarray(acts)
    n, h, w, c = acts.shape
    rng = np.random.default_rng(seed)
    rows, cols, ys, gs = [], [], [], []
    for i in range(n):
        r, q = int(cells[i, 0]), int(cells[i, 1])
        if r < 0:
            continue
        rows.append(i), cols.append(r * w + q), ys.append(1), gs.append(groups[i])
        others = np.setdiff1d(np.arange(h * w), [r * w + q])
        for o in rng.choice(others, size=negatives_per_positive, replace=False):
            rows.append(i), cols.append(int(o)), ys.append(0), gs.append(groups[i])
    if not rows:
        raise ValueError("no example has a cheese cell to probe for")
    X = acts.reshape(n, h * w, c)[np.array(rows), np.array(cols)]
    return fit_probe(X, np.array(ys), "logistic", np.array(gs), top_k, test_frac, seed)


def cheese_position_probe(X: np.ndarray, cheese: np.ndarray, groups: np.ndarray, top_k: int | None = None,
                          seed: int = 0, test_frac: float = 0.2) -> dict:
    """ME2: logistic probes for the cheese's row and column, in whichever coordinates ``cheese`` (N, 2) holds
    ((-1, -1) = no cheese): world squares (what the net sees) or inner ones. The headline accuracy is *both*
    coordinates right on a held-out maze (Wilson CI); per-axis results are included."""
    X = np.asarray(X, np.float32).reshape(len(X), -1)
    keep = cheese[:, 0] >= 0
    X, cheese, groups = X[keep], cheese[keep], np.asarray(groups)[keep]
    tr, te = group_split(groups, test_frac, seed)
    top_k = None if top_k is None else min(top_k, X.shape[1])
    preds, axes = [], {}
    for a, name in enumerate(("row", "col")):
        y = cheese[:, a]
        feats = top_k_features(X[tr], y[tr], top_k) if top_k else np.arange(X.shape[1])
        if len(np.unique(y[tr])) < 2:
            p = np.full(len(te), y[tr][0])
        else:
            p = _fit_predict("logistic", 1.0, 1.0, X[tr][:, feats], y[tr], X[te][:, feats])
        preds.append(p)
        axes[name] = float((p == y[te]).mean())
    joint = (preds[0] == cheese[te, 0]) & (preds[1] == cheese[te, 1])
    pairs, counts = np.unique(cheese[tr], axis=0, return_counts=True)
    mode = pairs[np.argmax(counts)]
    chance = float((cheese[te] == mode).all(1).mean())
    k = int(joint.sum())
    return {"accuracy": k / len(te), "ci": wilson_ci(k, len(te)), "chance": chance, "axes": axes,
            "n_train": len(tr), "n_test": len(te), "top_k": top_k, "threshold": ME2_THRESHOLD}


def layer_curve(acts: dict[str, np.ndarray], labels: dict[str, np.ndarray], names: Iterable[str] | None = None,
                top_k: int | None = None, seed: int = 0, target: str = "cheese") -> dict[str, dict]:
    """ME2's curve: :func:`cheese_position_probe` at every layer of a dataset, for the label ``target``
    ("cheese": world squares, "cheese_inner": inner squares)."""
    names = list(acts) if names is None else list(names)
    return {nm: cheese_position_probe(acts[nm], labels[target], labels["maze"], top_k, seed) for nm in names}
