import numpy as np
import pytest
from scipy.optimize import check_grad

from iquest_core.scaling import fit_power_law
from iquest_core.scaling.fit import _objective

CHINCHILLA = dict(A=406.4, alpha=0.34, B=410.7, beta=0.28, E=1.69)
CPU_SCALE = dict(A=60.0, alpha=0.45, B=25.0, beta=0.22, E=0.8)


def law(p, N, D):
    return p["A"] * N ** -p["alpha"] + p["B"] * D ** -p["beta"] + p["E"]


def grid(n_lo, d_lo, decades=4, points=9):
    N, D = np.meshgrid(np.logspace(n_lo, n_lo + decades, points), np.logspace(d_lo, d_lo + decades, points))
    return N.ravel(), D.ravel()


@pytest.mark.parametrize("true, n_lo, d_lo, seed", [(CHINCHILLA, 6, 8, 11), (CHINCHILLA, 6, 8, 12),
                                                    (CPU_SCALE, 4, 5, 13)])
def test_recovers_exponents_and_irreducible_loss_within_5_percent_at_half_percent_noise(true, n_lo, d_lo, seed):
    N, D = grid(n_lo, d_lo)
    rng = np.random.default_rng(seed)
    loss = law(true, N, D) * (1 + 0.005 * rng.standard_normal(N.size))
    fit = fit_power_law(N, D, loss)
    for name in ("alpha", "beta", "E"):
        assert getattr(fit, name) == pytest.approx(true[name], rel=0.05), name
    # The fitted surface tracks the noiseless law to within the noise level everywhere on the grid.
    np.testing.assert_allclose(fit.predict(N, D), law(true, N, D), rtol=0.005)
    assert fit.n_points == N.size and fit.ci == {}


def test_noiseless_points_are_fitted_exactly():
    N, D = grid(5, 6, decades=3, points=6)
    fit = fit_power_law(N, D, law(CPU_SCALE, N, D))
    for name, value in CPU_SCALE.items():
        assert getattr(fit, name) == pytest.approx(value, rel=1e-4), name


def test_structureless_data_gives_finite_coefficients_and_bounded_exponents():
    rng = np.random.default_rng()
    N, D = grid(4, 4, decades=1.5, points=4)
    fit = fit_power_law(N, D, 5 + 0.5 * rng.uniform(size=N.size))
    assert all(np.isfinite([fit.A, fit.B, fit.E])) and 0 <= fit.alpha <= 4 and 0 <= fit.beta <= 4


def test_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng()
    x, y = rng.normal(size=40), rng.normal(size=40)
    target = np.log(1 + rng.uniform(size=40))
    for delta in (1e-3, 10.0):  # residuals in the linear and in the quadratic part of the Huber loss
        theta = np.array([rng.normal() - 1, rng.uniform(0.1, 1), rng.normal() - 1, rng.uniform(0.1, 1), -0.5])
        f = lambda t: _objective(t, x, y, target, delta)[0]  # noqa: E731
        g = lambda t: _objective(t, x, y, target, delta)[1]  # noqa: E731
        assert check_grad(f, g, theta, epsilon=1e-7) < 1e-4 * max(1.0, np.linalg.norm(g(theta)))


def test_bootstrap_intervals_bracket_the_fit_cover_the_truth_and_repeat_with_the_seed():
    N, D = grid(6, 8, points=7)
    loss = law(CHINCHILLA, N, D) * (1 + 0.005 * np.random.default_rng(5).standard_normal(N.size))
    fit = fit_power_law(N, D, loss, bootstrap=30, confidence=0.9, seed=3)
    assert fit.confidence == 0.9 and set(fit.ci) == {"A", "alpha", "B", "beta", "E"}
    for name in ("alpha", "beta", "E"):
        lo, hi = fit.ci[name]
        assert lo <= getattr(fit, name) <= hi and lo < hi, name
        assert lo <= CHINCHILLA[name] <= hi, name
    assert fit_power_law(N, D, loss, bootstrap=30, confidence=0.9, seed=3).ci == fit.ci


@pytest.mark.parametrize("kwargs, name", [
    (dict(N=[0.0]), "N"), (dict(N=[-1.0]), "N"), (dict(D=[0.0]), "D"), (dict(D=[-5.0]), "D"),
    (dict(loss=[np.nan]), "loss"), (dict(loss=[0.0]), "loss"), (dict(N=[1e6] * 3), "N, D, loss"),
    (dict(N=[1e6] * 5, D=[1e7] * 5, loss=[2.0] * 5), "N"), (dict(delta=0.0), "delta"),
    (dict(bootstrap=-1), "bootstrap"), (dict(confidence=1.0), "confidence"),
])
def test_bad_input_raises_value_error_naming_it(kwargs, name):
    N, D = grid(6, 8, decades=2, points=3)
    args = dict(N=N, D=D, loss=law(CHINCHILLA, N, D))
    for key, value in kwargs.items():
        if key in args and len(value) == 1:
            args[key] = np.concatenate([args[key][:-1], value])
        else:
            args[key] = value
    with pytest.raises(ValueError, match=name):
        fit_power_law(**args)


def test_two_dimensional_input_is_refused():
    N, D = grid(6, 8, decades=2, points=3)
    with pytest.raises(ValueError, match="N: expected a 1-D array"):
        fit_power_law(N.reshape(3, 3), D, law(CHINCHILLA, N, D))
