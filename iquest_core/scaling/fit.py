"""Fitting L(N, D) = A N^-alpha + B D^-beta + E to (parameters, tokens, loss) points.

The method is Chinchilla's "approach 3" (Hoffmann et al. 2022): with a = log A, b = log B, e = log E,
minimise sum_k Huber_delta( LSE(a - alpha log N_k, b - beta log D_k, e) - log L_k ) with L-BFGS from
every point of a grid of initialisations and keep the best. Two choices here that the paper leaves
open: N and D are divided by their geometric means before fitting (A and B are converted back after),
so one grid of initialisations serves 1e5-parameter CPU runs and 1e10-parameter runs alike; the
objective is divided by delta so that L-BFGS's tolerances see numbers of order one; the exponents are
bounded to [0, 4] (L-BFGS-B), so that noisy data cannot send A or B to overflow.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3
MIN_POINTS = 6  # more points than the law's 5 parameters
# Initial (log A', alpha, log B', beta, log E) offsets; A', B', E start relative to the smallest loss.
_LOG_SCALE_GRID = (-3.0, -0.5)
_EXPONENT_GRID = (0.1, 0.4, 1.0)
_PARAMS = ("A", "alpha", "B", "beta", "E")
MAX_EXPONENT = 4.0
_BOUNDS = [(None, None), (0.0, MAX_EXPONENT), (None, None), (0.0, MAX_EXPONENT), (None, None)]


@dataclass(frozen=True)
class PowerLawFit:
    """L(N, D) = A N^-alpha + B D^-beta + E. `ci` maps a parameter name ("A", "alpha", "B", "beta", "E")
    to its bootstrap confidence interval (lo, hi) at level `confidence`; empty without a bootstrap."""

    A: float
    alpha: float
    B: float
    beta: float
    E: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float | None = None
    n_points: int = 0

    def predict(self, N, D) -> np.ndarray:
        """The law at N parameters and D tokens (broadcasting arrays), float64."""
        N, D = _positive("N", N), _positive("D", D)
        return self.A * N ** -self.alpha + self.B * D ** -self.beta + self.E


def fit_power_law(N, D, loss, *, delta: float = HUBER_DELTA, bootstrap: int = 0, confidence: float = 0.95,
                  seed: int = 0) -> PowerLawFit:
    """Fit L(N, D) = A N^-alpha + B D^-beta + E to equal-length 1-D arrays of parameters N, tokens D and
    losses (all > 0, at least 6 points) by Chinchilla approach 3 (module docstring).

    With bootstrap > 0, the points are resampled with replacement that many times (numpy Generator seeded
    by `seed`), each resample is refitted starting from the full-data optimum and the 5 best grid points,
    and `ci` holds the central `confidence` percentile interval of every parameter."""
    N, D, loss = (np.asarray(_positive(name, v), dtype=np.float64) for name, v in (("N", N), ("D", D),
                                                                                   ("loss", loss)))
    for name, v in (("N", N), ("D", D), ("loss", loss)):
        if v.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array, got shape {v.shape}")
    if not (N.size == D.size == loss.size):
        raise ValueError(f"N, D, loss: expected equal lengths, got {N.size}, {D.size}, {loss.size}")
    if N.size < MIN_POINTS:
        raise ValueError(f"N: expected at least {MIN_POINTS} points to fit 5 parameters, got {N.size}")
    if not delta > 0:
        raise ValueError(f"delta: expected > 0, got {delta}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap: expected >= 0 resamples, got {bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected in (0, 1), got {confidence}")

    n0, d0 = np.exp(np.log(N).mean()), np.exp(np.log(D).mean())
    x, y, target = np.log(N / n0), np.log(D / d0), np.log(loss)
    grid = _initial_grid(target.min())
    theta = _best_fit(x, y, target, delta, grid)
    fit = _to_fit(theta, n0, d0)
    if bootstrap == 0:
        return PowerLawFit(**fit, n_points=N.size)

    rng = np.random.default_rng(seed)
    samples = np.empty((bootstrap, len(_PARAMS)))
    for r in range(bootstrap):
        idx = rng.integers(0, N.size, N.size)
        xs, ys, ts = x[idx], y[idx], target[idx]
        scores = np.array([_objective(g, xs, ys, ts, delta)[0] for g in grid])
        starts = np.vstack([theta[None], grid[np.argsort(scores)[:5]]])
        samples[r] = list(_to_fit(_best_fit(xs, ys, ts, delta, starts), n0, d0).values())
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail], axis=0)
    ci = {name: (float(a), float(b)) for name, a, b in zip(_PARAMS, lo, hi)}
    return PowerLawFit(**fit, ci=ci, confidence=confidence, n_points=N.size)


def _initial_grid(log_min_loss: float) -> np.ndarray:
    scales = [log_min_loss + s for s in _LOG_SCALE_GRID]
    return np.array(list(itertools.product(scales, _EXPONENT_GRID, scales, _EXPONENT_GRID, scales)))


def _objective(theta: np.ndarray, x: np.ndarray, y: np.ndarray, target: np.ndarray, delta: float
               ) -> tuple[float, np.ndarray]:
    """(sum Huber_delta(residual) / delta, its gradient) in the normalised parameters."""
    a, alpha, b, beta, e = theta
    t_n, t_d = a - alpha * x, b - beta * y
    top = np.maximum(np.maximum(t_n, t_d), e)
    w_n, w_d, w_e = np.exp(t_n - top), np.exp(t_d - top), np.exp(e - top)
    total = w_n + w_d + w_e
    r = top + np.log(total) - target
    absr = np.abs(r)
    value = np.where(absr <= delta, 0.5 * r * r, delta * (absr - 0.5 * delta)).sum() / delta
    dr = np.clip(r, -delta, delta) / (delta * total)  # d value / d LSE, times the softmax denominator
    w_n, w_d, w_e = w_n * dr, w_d * dr, w_e * dr
    grad = np.array([w_n.sum(), -(w_n @ x), w_d.sum(), -(w_d @ y), w_e.sum()])
    return float(value), grad


def _best_fit(x, y, target, delta, starts) -> np.ndarray:
    best, best_value = None, np.inf
    for start in starts:
        result = minimize(_objective, start, args=(x, y, target, delta), jac=True, method="L-BFGS-B",
                          bounds=_BOUNDS, options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10})
        if np.all(np.isfinite(result.x)) and result.fun < best_value:
            best, best_value = result.x, result.fun
    if best is None:
        raise ValueError("loss: the fit diverged from every initialisation")
    return best


def _to_fit(theta: np.ndarray, n0: float, d0: float) -> dict[str, float]:
    a, alpha, b, beta, e = (float(v) for v in theta)
    return {"A": float(np.exp(a + alpha * np.log(n0))), "alpha": alpha,
            "B": float(np.exp(b + beta * np.log(d0))), "beta": beta, "E": float(np.exp(e))}


def _positive(name: str, value) -> np.ndarray:
    """value as a float64 array, or ValueError naming it when an entry is not finite and > 0."""
    arr = np.asarray(value, dtype=np.float64)
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        raise ValueError(f"{name}: expected finite values > 0, got {arr[bad].ravel()[0]!r}")
    return arr
