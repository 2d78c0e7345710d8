"""The multilingual scaling law: per-language fits combined by mixture shares, with cross-language transfer.

For a mixture p (language -> share, shares >= 0 summing to 1) of languages with per-language fits
L_i(N, D) = A_i N^-alpha_Ni + B_i D^-alpha_Di + L_inf,i:

    L(N, D; p) = A(p) N^-alpha_N(p) + B(p) D_x^-alpha_D(p) + L_inf(p)
    alpha_N(p) = sum_i p_i alpha_Ni,  alpha_D(p) = sum_i p_i alpha_Di,  L_inf(p) = sum_i p_i L_inf,i
    log A(p)   = sum_i p_i log A_i,   log B(p)   = sum_i p_i log B_i
    D_x        = D (1 + gamma sum_{i != j} p_i p_j tau_ij)

The coefficients are p-weighted in log space, like the exponents, so that each term is the p-weighted
geometric mean of the per-language terms: A(p) N^-alpha_N(p) = prod_i (A_i N^-alpha_Ni)^p_i. A
single-language mixture gives back that language's fit exactly (up to transfer, which needs two
languages), and by AM-GM the law's N and D terms never exceed the p-weighted average of the per-language
terms at the same D_x. L(N, D; p) is the loss of a model trained on the mixture, averaged over its
languages with the same weights p.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from iquest_core.scaling.fit import PowerLawFit, _positive

SHARE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class FinalLaw:
    """The published fitted final law L*(N, D) = A* N^-alpha_N + B* D^-alpha_D + L_inf (exponents and
    irreducible loss as published; A* and B* are not given with them)."""

    alpha_N: float
    alpha_D: float
    L_inf: float


FINAL_LAW = FinalLaw(alpha_N=0.6859, alpha_D=0.2186, L_inf=0.2025)


class MultilingualLaw:
    """per_language: language -> PowerLawFit (its alpha is alpha_N,i, beta is alpha_D,i, E is L_inf,i).
    tau: (language_i, language_j) -> transfer coefficient tau_ij for i != j; a pair whose reverse is absent
    is taken as symmetric (tau_ji = tau_ij), pairs not given are 0. gamma scales all transfer (module
    docstring for the law)."""

    def __init__(self, per_language: Mapping[str, PowerLawFit],
                 tau: Mapping[tuple[str, str], float] | None = None, gamma: float = 0.0):
        if not per_language:
            raise ValueError("per_language: expected at least one language")
        for lang, fit in per_language.items():
            if not isinstance(fit, PowerLawFit):
                raise ValueError(f"per_language[{lang!r}]: expected a PowerLawFit, got {type(fit).__name__}")
            if not (fit.A > 0 and fit.B > 0 and math.isfinite(fit.alpha) and math.isfinite(fit.beta)):
                raise ValueError(f"per_language[{lang!r}]: expected A > 0, B > 0 and finite exponents")
        if not math.isfinite(gamma):
            raise ValueError(f"gamma: expected a finite number, got {gamma}")
        self.per_language = dict(per_language)
        self.languages = list(self.per_language)
        self.gamma = float(gamma)
        self.tau = dict(tau or {})
        index = {lang: i for i, lang in enumerate(self.languages)}
        self._tau = np.zeros((len(index), len(index)))
        for pair, value in self.tau.items():
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ValueError(f"tau: expected (language_i, language_j) keys, got {pair!r}")
            for lang in pair:
                if lang not in index:
                    raise ValueError(f"tau: unknown language {lang!r} in pair {pair!r}")
            if pair[0] == pair[1]:
                raise ValueError(f"tau: pair {pair!r} needs two different languages")
            if not math.isfinite(value):
                raise ValueError(f"tau[{pair!r}]: expected a finite number, got {value}")
            i, j = index[pair[0]], index[pair[1]]
            self._tau[i, j] = value
            if (pair[1], pair[0]) not in self.tau:
                self._tau[j, i] = value
        fits = [self.per_language[lang] for lang in self.languages]
        self._log_A = np.log([f.A for f in fits])
        self._log_B = np.log([f.B for f in fits])
        self._alpha_N = np.array([f.alpha for f in fits])
        self._alpha_D = np.array([f.beta for f in fits])
        self._L_inf = np.array([f.E for f in fits])

    def shares(self, p: Mapping[str, float]) -> np.ndarray:
        """p as a share vector over self.languages (missing languages 0); ValueError for an unknown
        language, a negative or non-finite share, or shares not summing to 1 (within 1e-6)."""
        if not isinstance(p, Mapping) or not p:
            raise ValueError(f"p: expected a non-empty dict language -> share, got {p!r}")
        out = np.zeros(len(self.languages))
        for lang, share in p.items():
            if lang not in self.per_language:
                raise ValueError(f"p: unknown language {lang!r} (the law has {', '.join(self.languages)})")
            if not (math.isfinite(share) and share >= 0):
                raise ValueError(f"p[{lang!r}]: expected a finite share >= 0, got {share}")
            out[self.languages.index(lang)] = share
        if abs(out.sum() - 1) > SHARE_TOLERANCE:
            raise ValueError(f"p: shares must sum to 1, got {out.sum():.9g}")
        return out

    def coefficients(self, p: Mapping[str, float]) -> dict[str, float]:
        """The mixture's A(p), alpha_N(p), B(p), alpha_D(p), L_inf(p) and transfer factor
        1 + gamma sum_{i != j} p_i p_j tau_ij."""
        s = self.shares(p)
        return {"A": float(np.exp(s @ self._log_A)), "alpha_N": float(s @ self._alpha_N),
                "B": float(np.exp(s @ self._log_B)), "alpha_D": float(s @ self._alpha_D),
                "L_inf": float(s @ self._L_inf), "transfer": self._transfer(s)}

    def effective_data(self, D, p: Mapping[str, float]):
        """D_x = D (1 + gamma sum_{i != j} p_i p_j tau_ij) for D tokens (> 0, scalar or array)."""
        D = _positive("D", D)
        return _scalar_or_array(D * self._checked_transfer(self.shares(p)))

    def loss(self, N, D, p: Mapping[str, float]):
        """L(N, D; p) for N parameters and D tokens of the whole mixture (> 0, scalars or broadcasting
        arrays), float64."""
        N, D = _positive("N", N), _positive("D", D)
        s = self.shares(p)
        return _scalar_or_array(self._loss(np.log(N), np.log(D * self._checked_transfer(s)), s))

    def optimal_mixture(self, N, D, languages: Sequence[str] | None = None, min_share: float = 0.0,
                        starts: int = 8, seed: int = 0) -> dict[str, float]:
        """The mixture over `languages` (default: all of the law's) minimising L(N, D; p) for scalar N and
        D, with every share in [min_share, 1] and shares summing to 1; languages not listed get share 0.

        SLSQP from the uniform mixture, from each language's largest allowed share and from `starts`
        Dirichlet(1) random points (numpy Generator seeded by `seed`); the best result is returned,
        projected back onto the constraints. Mixtures whose transfer factor is <= 0 are never returned."""
        N, D = float(_positive("N", N)), float(_positive("D", D))
        languages = list(self.languages if languages is None else languages)
        if not languages:
            raise ValueError("languages: expected at least one language")
        for lang in languages:
            if lang not in self.per_language:
                raise ValueError(f"languages: unknown language {lang!r} (the law has {', '.join(self.languages)})")
        if len(set(languages)) != len(languages):
            raise ValueError(f"languages: expected distinct names, got {languages}")
        k = len(languages)
        if not (0 <= min_share <= 1 / k):
            raise ValueError(f"min_share: expected in [0, 1/{k}] for {k} languages, got {min_share}")
        if starts < 0:
            raise ValueError(f"starts: expected >= 0, got {starts}")
        cols = [self.languages.index(lang) for lang in languages]
        log_N, log_D = math.log(N), math.log(D)
        free = 1 - k * min_share

        def full(q: np.ndarray) -> np.ndarray:
            s = np.zeros(len(self.languages))
            s[cols] = q
            return s

        def objective(q: np.ndarray) -> float:
            s = full(q)  # a transfer factor <= 0 is clamped to keep SLSQP's steps finite, then refused below
            return float(self._loss(log_N, log_D + math.log(max(self._transfer(s), 1e-12)), s))

        rng = np.random.default_rng(seed)
        points = [np.full(k, 1 / k), *(min_share + free * np.eye(k)),
                  *(min_share + free * rng.dirichlet(np.ones(k), size=starts))]
        best, best_value = None, math.inf
        for q0 in points:
            candidates = [q0]
            if k > 1 and free > 0:
                result = minimize(objective, q0, method="SLSQP", bounds=[(min_share, 1.0)] * k,
                                  constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1}],
                                  options={"maxiter": 500, "ftol": 1e-14})
                candidates.append(_project(result.x, min_share))
            for q in candidates:
                value = objective(q)
                if value < best_value and self._transfer(full(q)) > 0:
                    best, best_value = q, value
        if best is None:
            raise ValueError("tau, gamma: the transfer factor is <= 0 at every mixture tried")
        return {lang: float(share) for lang, share in zip(languages, best)}

    def _transfer(self, s: np.ndarray) -> float:
        return float(1 + self.gamma * (s @ self._tau @ s))  # tau's diagonal is 0: only i != j counts

    def _checked_transfer(self, s: np.ndarray) -> float:
        transfer = self._transfer(s)
        if transfer <= 0:
            raise ValueError(f"tau, gamma: the transfer factor 1 + gamma sum p_i p_j tau_ij is {transfer:.6g} "
                             "<= 0 at this mixture")
        return transfer

    def _loss(self, log_N, log_Dx, s: np.ndarray):
        return (np.exp(s @ self._log_A - (s @ self._alpha_N) * log_N)
                + np.exp(s @ self._log_B - (s @ self._alpha_D) * log_Dx) + s @ self._L_inf)


def _project(q: np.ndarray, min_share: float) -> np.ndarray:
    """q moved onto {q_i >= min_share, sum q = 1}: clipped at min_share, the excess rescaled to sum to
    1 - k min_share."""
    excess = np.maximum(q, min_share) - min_share
    free = 1 - q.size * min_share
    if excess.sum() <= 0:
        return np.full(q.size, 1 / q.size)
    return min_share + free * excess / excess.sum()


def _scalar_or_array(value):
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value
