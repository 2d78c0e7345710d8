import itertools
import math

import numpy as np
import pytest

from iquest_core.scaling import FINAL_LAW, MultilingualLaw, PowerLawFit

FITS = {"python": PowerLawFit(A=400, alpha=0.34, B=410, beta=0.28, E=1.70),
        "java": PowerLawFit(A=300, alpha=0.32, B=600, beta=0.30, E=1.66),
        "c": PowerLawFit(A=500, alpha=0.36, B=300, beta=0.26, E=1.74)}
TAU = {("python", "java"): 0.6, ("python", "c"): 0.3, ("java", "c"): 0.4}


def reference_loss(fits, tau, gamma, N, D, p):
    """The mixture law written out term by term in plain float64 Python."""
    transfer = 1.0
    for i, j in itertools.permutations(p, 2):
        transfer += gamma * p[i] * p[j] * (tau[(i, j)] if (i, j) in tau else tau.get((j, i), 0.0))
    A = math.prod(fits[lang].A ** s for lang, s in p.items())
    B = math.prod(fits[lang].B ** s for lang, s in p.items())
    alpha_N = sum(fits[lang].alpha * s for lang, s in p.items())
    alpha_D = sum(fits[lang].beta * s for lang, s in p.items())
    L_inf = sum(fits[lang].E * s for lang, s in p.items())
    return A * N ** -alpha_N + B * (D * transfer) ** -alpha_D + L_inf


def random_law(rng, k):
    fits = {f"lang{i}": PowerLawFit(A=rng.uniform(50, 800), alpha=rng.uniform(0.2, 0.7), B=rng.uniform(50, 800),
                                    beta=rng.uniform(0.15, 0.4), E=rng.uniform(0.5, 2.0)) for i in range(k)}
    tau = {pair: rng.uniform(-0.3, 1.0) for pair in itertools.combinations(fits, 2)}
    return fits, tau


def test_final_law_constants_are_the_published_ones():
    assert (FINAL_LAW.alpha_N, FINAL_LAW.alpha_D, FINAL_LAW.L_inf) == (0.6859, 0.2186, 0.2025)


def test_loss_matches_the_law_written_out_for_random_mixtures():
    rng = np.random.default_rng()
    fits, tau = random_law(rng, 4)
    law = MultilingualLaw(fits, tau=tau, gamma=0.5)
    for _ in range(5):
        p = dict(zip(fits, rng.dirichlet(np.ones(4))))
        N, D = 10 ** rng.uniform(5, 11), 10 ** rng.uniform(6, 13)
        assert law.loss(N, D, p) == pytest.approx(reference_loss(fits, tau, 0.5, N, D, p), rel=1e-12)


def test_loss_broadcasts_arrays_and_a_single_language_is_its_own_fit():
    law = MultilingualLaw(FITS, tau=TAU, gamma=2.0)
    N, D = np.geomspace(1e6, 1e10, 7)[:, None], np.geomspace(1e8, 1e12, 5)[None, :]
    for lang, fit in FITS.items():
        np.testing.assert_allclose(law.loss(N, D, {lang: 1.0}), fit.predict(N, D), rtol=1e-13)
    assert law.loss(N, D, {"python": 0.5, "c": 0.5}).shape == (7, 5)


def test_effective_data_by_hand_with_symmetric_and_asymmetric_transfer():
    law = MultilingualLaw(FITS, tau={("python", "java"): 0.4, ("java", "c"): 0.1, ("c", "java"): -0.2}, gamma=0.5)
    p = {"python": 0.5, "java": 0.3, "c": 0.2}
    # (python, java) has no reverse: counted both ways; (java, c) and (c, java) each as given.
    pairs = 2 * 0.5 * 0.3 * 0.4 + 0.3 * 0.2 * 0.1 + 0.2 * 0.3 * -0.2
    assert law.effective_data(1e9, p) == pytest.approx(1e9 * (1 + 0.5 * pairs), rel=1e-14)
    np.testing.assert_allclose(law.effective_data(np.array([1.0, 2.0]), p), [1 + 0.5 * pairs, 2 + pairs])
    assert law.effective_data(7.0, {"c": 1.0}) == 7.0
    assert law.coefficients(p)["transfer"] == pytest.approx(1 + 0.5 * pairs)


def brute_force_minimum(law, N, D, languages, min_share, steps=200):
    best = math.inf
    for i in range(steps + 1):
        for j in range(steps + 1 - i):
            q = np.array([i, j, steps - i - j]) / steps
            if q.min() >= min_share - 1e-12:
                best = min(best, law.loss(N, D, dict(zip(languages, q))))
    return best


@pytest.mark.parametrize("min_share", [0.0, 0.2])
def test_optimal_mixture_beats_uniform_every_single_language_and_a_dense_grid(min_share):
    law = MultilingualLaw(FITS, tau=TAU, gamma=1.0)
    N, D = 1e9, 2e10
    p = law.optimal_mixture(N, D, min_share=min_share)
    assert list(p) == list(FITS) and sum(p.values()) == pytest.approx(1, abs=1e-12)
    assert min(p.values()) >= min_share - 1e-12
    best = law.loss(N, D, p)
    assert best < law.loss(N, D, {lang: 1 / 3 for lang in FITS})
    for lang in FITS:
        single = {other: min_share for other in FITS} | {lang: 1 - 2 * min_share}
        assert best < law.loss(N, D, single), lang
    assert best <= brute_force_minimum(law, N, D, list(FITS), min_share) + 1e-12


def test_optimal_mixture_on_random_laws_is_no_worse_than_a_dense_grid():
    rng = np.random.default_rng()
    fits, tau = random_law(rng, 3)
    law = MultilingualLaw(fits, tau=tau, gamma=rng.uniform(0, 2))
    N, D = 10 ** rng.uniform(6, 10), 10 ** rng.uniform(8, 12)
    p = law.optimal_mixture(N, D)
    assert law.loss(N, D, p) <= brute_force_minimum(law, N, D, list(fits), 0.0, steps=100) + 1e-12


def test_optimal_mixture_picks_a_language_better_in_every_term_and_only_the_listed_ones():
    fits = dict(FITS, best=PowerLawFit(A=200, alpha=0.34, B=200, beta=0.28, E=1.0))
    law = MultilingualLaw(fits)  # no transfer: nothing to gain from mixing
    p = law.optimal_mixture(1e9, 1e11)
    assert p["best"] == pytest.approx(1, abs=1e-9)
    subset = law.optimal_mixture(1e9, 1e11, languages=["c", "python"])
    assert set(subset) == {"c", "python"} and sum(subset.values()) == pytest.approx(1)
    assert law.optimal_mixture(1e9, 1e11, languages=["java"]) == {"java": 1.0}
    even = law.optimal_mixture(1e9, 1e11, languages=["c", "python"], min_share=0.5)
    assert even == pytest.approx({"c": 0.5, "python": 0.5})


@pytest.mark.parametrize("call, match", [
    (lambda law: law.loss(0.0, 1e9, {"c": 1.0}), "N"),
    (lambda law: law.loss(-1e9, 1e9, {"c": 1.0}), "N"),
    (lambda law: law.loss(1e9, 0.0, {"c": 1.0}), "D"),
    (lambda law: law.effective_data(-1.0, {"c": 1.0}), "D"),
    (lambda law: law.loss(1e9, 1e9, {"c": 0.5, "java": 0.4}), "sum to 1"),
    (lambda law: law.loss(1e9, 1e9, {"c": 1.2, "java": -0.2}), "java"),
    (lambda law: law.loss(1e9, 1e9, {"rust": 1.0}), "rust"),
    (lambda law: law.loss(1e9, 1e9, {}), "p"),
    (lambda law: law.optimal_mixture(1e9, 1e9, languages=["c", "cobol"]), "cobol"),
    (lambda law: law.optimal_mixture(1e9, 1e9, languages=["c", "c"]), "distinct"),
    (lambda law: law.optimal_mixture(0.0, 1e9), "N"),
    (lambda law: law.optimal_mixture(1e9, 1e9, min_share=0.4), "min_share"),
    (lambda law: law.optimal_mixture(1e9, 1e9, min_share=-0.1), "min_share"),
])
def test_bad_input_raises_value_error_naming_it(call, match):
    with pytest.raises(ValueError, match=match):
        call(MultilingualLaw(FITS, tau=TAU, gamma=1.0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(per_language={}), "per_language"),
    (dict(tau={("python", "go"): 0.1}), "go"),
    (dict(tau={("c", "c"): 0.1}), "two different"),
    (dict(tau={"c": 0.1}), "tau"),
    (dict(gamma=math.nan), "gamma"),
])
def test_bad_law_raises_value_error_naming_it(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultilingualLaw(**({"per_language": FITS} | kwargs))


def test_transfer_factor_at_or_below_zero_is_refused():
    law = MultilingualLaw(FITS, tau={("c", "java"): -1.0}, gamma=10.0)
    with pytest.raises(ValueError, match="transfer"):
        law.loss(1e9, 1e9, {"c": 0.5, "java": 0.5})
    p = law.optimal_mixture(1e9, 1e9, languages=["c", "java"])  # the optimiser steers clear of it
    assert law.coefficients(p)["transfer"] > 0
