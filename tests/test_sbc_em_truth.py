"""``bench/sbc/em_truth.py``: the truth's log posterior is on the EM search's own scale, so
"the search's best lies below the truth" means a search failure and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose
from stressflow.inference.fitting import initialize as ini

from bench.sbc import em_truth


def test_truth_score_matches_the_em_score_at_the_em_optimum():
    """Scored by ``truth_log_posterior``, the EM search's best point gets the log posterior the
    search reports for it (the same ``log p(y | theta) + log p(P)``), and the true theta of the
    world is inside the model's labelling (the rule names its stages in their own order)."""
    spec = em_truth.MODELS["default"]()
    names = em_truth.model_features(spec)
    theta, stages, data = em_truth.world(spec, names, seed=1, n_days=600)
    assert len(stages) == 600 and data.features.shape == (600, len(names))
    search = ini.em_search(data.features, spec, seed=1, n_starts=2, split_starts=False)
    reported = float(search.optima["log_posterior"].iloc[0])
    # EM reports the score of its last E step, one M step before the point (tol 1e-8): within
    # 0.01; leaving out the prior of P would be off by about 1,000 here
    assert_allclose(em_truth.truth_log_posterior(spec, search.point, data.features), reported,
                    rtol=0, atol=1e-2)
    from stressflow.models.emissions import identification_order

    order = identification_order(spec, list(names), theta["mu"])
    np.testing.assert_array_equal(order, np.arange(spec.n_stages))


def test_summary_counts_failures_and_splits_the_ranks():
    """The summary counts a negative gap as a failure and splits the rank rows by it."""
    table = pd.DataFrame({"seed": [0, 1, 2], "n_days": 1000, "min_stage_days": [0, 30, 5],
                          "truth": 0.0, "kmeans_gap": [-5.0, 2.0, 3.0],
                          "split_gap": [1.0, 2.0, 3.0], "kmeans_seconds": 1.0,
                          "split_seconds": 2.0})
    ranks = pd.DataFrame({"seed": [0, 1, 2], "ranked": 19, "mu[0,0]": [0, 10, 19],
                          "sigma[0,0]": [5, 5, 5], "P[0,0]": [19, 0, 9]})
    text = "\n".join(em_truth.summary(table, ranks, "kmeans"))
    assert "| kmeans | 1 of 3 |" in text and "| split | 0 of 3 |" in text
    assert "| best below the truth | 1 |" in text and "| best at or above the truth | 2 |" in text
