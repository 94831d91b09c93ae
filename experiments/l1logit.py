"""Many L1-penalised logistic regressions on one design matrix at once (all splits, or all bootstrap resamples).

Why: the study fits the same few (≤ 11) z-scored factors hundreds of times (80/20 splits, row bootstraps,
drop-one refits); one liblinear call each cost most of the study's wall time. Each fit here is a row of sample
weights over the shared rows (a split = 0/1 weights, a bootstrap resample = its multinomial counts, which is the
same likelihood as the duplicated rows), so all fits advance together as matrix products.

The estimator is liblinear's (sklearn ``LogisticRegression(penalty="l1", solver="liblinear", C=C)``) exactly:

    minimise  ||w||_1 + |b| + C · Σ_i s_i · log(1 + exp(-y_i (x_i·w + b)))      y_i ∈ {-1, +1}

with the intercept ``b`` penalised like a weight (liblinear's ``intercept_scaling=1`` bias feature). It is solved by
proximal Newton (glmnet-style): a quadratic model of the loss per fit, minimised with the L1 term by coordinate
descent on the (d+1)×(d+1) Hessian, then a backtracking step. The objective is convex, so this reaches the same
optimum as liblinear, only to a tighter tolerance (liblinear stops at tol=1e-4 on its own criterion).
"""
from __future__ import annotations

import numpy as np

MAX_NEWTON = 50  # proximal Newton converges quadratically: ~5-10 steps on standardised factors
SWEEPS = 10  # coordinate-descent sweeps between exact solves on the guessed active set
MAX_ROUNDS = 20
MAX_HALVINGS = 30


def _objective(beta: np.ndarray, Xt: np.ndarray, ys: np.ndarray, w: np.ndarray, C: float) -> np.ndarray:
    margin = (beta @ Xt.T) * ys
    return C * (w * np.logaddexp(0.0, -margin)).sum(axis=1) + np.abs(beta).sum(axis=1)


def fit_l1_logistic(X: np.ndarray, y: np.ndarray, weights: np.ndarray, C: float = 1.0, tol: float = 1e-7
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit one L1 logistic regression per row of ``weights`` (B, n) on ``X`` (n, d), ``y`` (n,) boolean.

    Returns ``(coef (B, d), intercept (B,), converged (B,) bool)``. A fit stops when its Newton step changes no
    coefficient by more than ``tol`` × (1 + largest |coefficient|).
    """
    from threadpoolctl import threadpool_limits

    # the products are small (n × (d+1)²): BLAS threads only spin against each other (3x slower on 2 busy cores)
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(X, y, weights, C, tol)


def _fit(X: np.ndarray, y: np.ndarray, weights: np.ndarray, C: float, tol: float
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, np.float64)
    y = np.asarray(y, bool)
    w = np.atleast_2d(np.asarray(weights, np.float64))
    n, d = X.shape
    if y.shape != (n,) or w.shape[1] != n:
        raise ValueError(f"X {X.shape}, y {y.shape} and weights {w.shape} disagree on the number of rows")
    if C <= 0 or (w < 0).any():
        raise ValueError("need C > 0 and non-negative sample weights")
    Xt = np.column_stack([X, np.ones(n)])
    D = d + 1
    ys = np.where(y, 1.0, -1.0)
    outer = (Xt[:, :, None] * Xt[:, None, :]).reshape(n, D * D)  # per-row x xᵀ, so H is one matrix product
    B = w.shape[0]
    beta = np.zeros((B, D))
    active = np.ones(B, bool)
    obj = _objective(beta, Xt, ys, w, C)
    rows = np.arange(B)
    for _ in range(MAX_NEWTON):
        a = rows[active]
        if not len(a):
            break
        b, wa = beta[a], w[a]
        p = 1.0 / (1.0 + np.exp(-(b @ Xt.T)))
        g = C * ((wa * (p - y)) @ Xt)
        H = C * ((wa * p * (1.0 - p)) @ outer).reshape(len(a), D, D)
        z = _quadratic_l1(b, g, H)
        step = z - b
        # backtracking (Armijo on the composite objective); t halves only for fits that did not decrease enough
        decrease = (g * step).sum(1) + np.abs(z).sum(1) - np.abs(b).sum(1)
        t = np.ones(len(a))
        f0 = obj[a]
        new, f_new = z, _objective(z, Xt, ys, wa, C)
        for _ in range(MAX_HALVINGS):
            bad = f_new > f0 + 1e-4 * t * decrease + 1e-12 * np.abs(f0)
            if not bad.any():
                break
            t = np.where(bad, t / 2, t)
            new = b + t[:, None] * step
            f_new = np.where(bad, _objective(new, Xt, ys, wa, C), f_new)
        moved = np.abs(new - b).max(1)
        beta[a], obj[a] = new, f_new
        active[a] = moved > tol * (1.0 + np.abs(new).max(1))
    return beta[:, :d], beta[:, d], ~active


def _quadratic_l1(b: np.ndarray, g: np.ndarray, H: np.ndarray) -> np.ndarray:
    """argmin_z g·(z − b) + ½ (z − b)ᵀ H (z − b) + ||z||_1 per fit: coordinate descent guesses the active set and
    signs, then one linear solve on it gives the exact minimiser once the KKT conditions hold (CD alone crawls when
    factors are strongly correlated, as step and Euclidean distances are)."""
    B, D = b.shape
    hjj = np.einsum("bjj->bj", H)
    usable = hjj > 1e-12  # a column of zeros (constant factor) keeps coefficient 0
    safe = np.where(usable, hjj, 1.0)
    z, r = b.copy(), g.copy()  # r = gradient of the smooth part at z
    todo = np.ones(B, bool)
    for _ in range(MAX_ROUNDS):
        for _ in range(SWEEPS):
            for j in range(D):
                u = z[:, j] - r[:, j] / safe[:, j]
                zj = np.where(usable[:, j] & todo, np.sign(u) * np.maximum(np.abs(u) - 1.0 / safe[:, j], 0.0), z[:, j])
                dz = zj - z[:, j]
                z[:, j] = zj
                r += H[:, :, j] * dz[:, None]
        # exact solve with the active set and signs fixed: H_AA (z_A − b_A) = −g_A − sign(z_A)
        act = (z != 0) & usable
        sgn = np.sign(z)
        both = act[:, :, None] & act[:, None, :]
        M = np.where(both, H, 0.0) + np.where(act, 0.0, 1.0)[:, :, None] * np.eye(D)[None]
        rhs = np.where(act, np.einsum("bjk,bk->bj", H, b) - g - sgn, 0.0)
        cand = np.linalg.solve(M, rhs[:, :, None])[:, :, 0]
        rc = g + np.einsum("bjk,bk->bj", H, cand - b)
        ok = (np.where(act, np.sign(cand) == sgn, np.abs(rc) <= 1.0 + 1e-9) | ~usable).all(1) & todo
        z[ok], r[ok] = cand[ok], rc[ok]
        todo &= ~ok
        if not todo.any():
            break
    return z
