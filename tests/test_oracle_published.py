"""A published oracle for the HMM kernels: Stata's Markov-switching results for the federal
funds rate (StataCorp, *Stata Time-Series Reference Manual, Release 14*, ``mswitch``,
Example 1: a two-state Markov-switching dynamic regression with a state-dependent constant),
reproduced at the published parameters.

Data and numbers: the quarterly federal funds rate 1954Q3-2010Q4 (226 values) and Stata's
predicted, filtered and smoothed state probabilities, as shipped in statsmodels' test suite
(``statsmodels/tsa/regime_switching/tests``: ``test_markov_regression.fedfunds`` and
``results/results_predict_fedfunds.csv``, columns ``const_p1``, ``const_f1``, ``const_sm1``,
written by Stata). Published fit: ``p11 = 0.9820939``, ``p21 = 0.0503587``, ``mu_1 = 3.70877``,
``mu_2 = 9.556793``, ``sigma = 2.107562``, log-likelihood ``-508.63592``.

Model: ``y_t = mu_{s_t} + e_t``, ``e_t ~ N(0, sigma^2)``; ``P[i, j] = Pr(s_t = j | s_{t-1} = i)``
(Stata's ``p11`` is ``P[0, 0]`` and ``p21`` is ``P[1, 0]``); the first state has the stationary
distribution. The tolerances are the published precision: 7 decimals for the probabilities,
5 for the log-likelihood (the parameters themselves are rounded to 7 significant digits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stressflow.models.numerics import kernels

P11, P21, MU, SIGMA = 0.9820939, 0.0503587, (3.70877, 9.556793), 2.107562
STATA_LLF = -508.63592


@pytest.fixture(scope="module")
def published():
    """(y, Stata's results table) from statsmodels' test suite; skips if it is not installed."""
    tests = pytest.importorskip("statsmodels.tsa.regime_switching.tests.test_markov_regression")
    table = Path(tests.current_path) / "results" / "results_predict_fedfunds.csv"
    if not table.is_file():
        pytest.skip(f"statsmodels' published results {table} are not installed")
    y = np.asarray(tests.fedfunds, dtype=np.float64)
    results = pd.read_csv(table)
    assert len(y) == len(results) == 226
    return y, results


def _kernel_inputs(y: np.ndarray):
    trans = np.array([[P11, 1.0 - P11], [P21, 1.0 - P21]])
    stationary = np.array([P21, 1.0 - P11]) / (P21 + 1.0 - P11)
    mu = np.asarray(MU)
    log_lik = -0.5 * np.log(2.0 * np.pi * SIGMA**2) - 0.5 * ((y[:, None] - mu) / SIGMA) ** 2
    return np.log(stationary), np.log(trans), log_lik, trans, stationary


def test_log_likelihood_matches_stata(published):
    y, _ = published
    log_init, log_trans, log_lik, _, _ = _kernel_inputs(y)
    _, log_norm = kernels.filter_probs(log_init, log_trans, log_lik)
    assert abs(log_norm.sum() - STATA_LLF) < 5e-6
    assert abs(kernels.log_marginal(log_init, log_trans, log_lik) - STATA_LLF) < 5e-6


def test_filtered_predicted_and_smoothed_probabilities_match_stata(published):
    y, stata = published
    log_init, log_trans, log_lik, trans, stationary = _kernel_inputs(y)
    filtered, _ = kernels.filter_probs(log_init, log_trans, log_lik)
    smoothed, _, _, _ = kernels.smooth(log_init, log_trans, log_lik)
    predicted = np.vstack([stationary, filtered[:-1] @ trans])
    for ours, column in ((filtered, "const_f1"), (smoothed, "const_sm1"),
                         (predicted, "const_p1")):
        gap = np.abs(ours[:, 0] - stata[column].to_numpy())
        assert gap.max() < 1e-6, (column, float(gap.max()), int(gap.argmax()))
    # the two high-rate episodes (1970s-80s) are where Stata puts state 2
    assert filtered[:, 1].max() > 0.999 and filtered[:, 0].max() > 0.999


def test_the_oracle_can_tell_a_wrong_convention(published):
    """Transposing P (the other row/column convention) misses the published filtered
    probabilities by 0.25; reading p21 as a staying probability misses the log-likelihood."""
    y, stata = published
    log_init, log_trans, log_lik, _, _ = _kernel_inputs(y)
    filtered, _ = kernels.filter_probs(log_init, log_trans.T.copy(), log_lik)
    assert np.abs(filtered[:, 0] - stata["const_f1"].to_numpy()).max() > 0.1
    misread = np.log(np.array([[P11, 1.0 - P11], [1.0 - P21, P21]]))
    _, log_norm = kernels.filter_probs(log_init, misread, log_lik)
    assert abs(log_norm.sum() - STATA_LLF) > 100.0
