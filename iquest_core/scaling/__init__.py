"""Multilingual code scaling laws: per-language power-law fits, the mixture law with cross-language
transfer, the optimal mixture, plots, and a sweep of tiny real training runs (`iquest scaling`).

    fit = fit_power_law(N, D, loss)      # L = A N^-alpha + B D^-beta + E (Chinchilla approach 3)
    law = MultilingualLaw(per_language={"python": fit, ...}, tau={("python", "c"): 0.1}, gamma=1.0)
    law.loss(N, D, p); law.effective_data(D, p); law.optimal_mixture(N, D, languages=[...], min_share=0.0)
"""

from iquest_core.scaling.fit import PowerLawFit, fit_power_law
from iquest_core.scaling.law import FINAL_LAW, FinalLaw, MultilingualLaw

__all__ = ["FINAL_LAW", "FinalLaw", "MultilingualLaw", "PowerLawFit", "fit_power_law"]
