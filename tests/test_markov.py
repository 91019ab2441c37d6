"""The stationary law of P (``models.numerics.markov``) against exact oracles, and its
labelled view ``stationary_shares`` on a real fit."""

import numpy as np
import pytest
from stressflow.models.numerics.markov import stationary_distribution
from stressflow.models.spec import allowed_transitions


def test_two_stage_chain_matches_the_closed_form():
    # P = [[1-a, a], [b, 1-b]] has pi = (b, a) / (a + b)
    a, b = 0.03, 0.2
    pi = stationary_distribution(np.array([[1 - a, a], [b, 1 - b]]))
    np.testing.assert_allclose(pi, [b / (a + b), a / (a + b)], rtol=1e-12)


def _gated_matrices(n, seed):
    rng = np.random.default_rng(seed)
    allowed = allowed_transitions("gated", 5)
    trans = np.zeros((n, 5, 5))
    for m in range(n):
        for i in range(5):
            conc = np.where(np.arange(5) == i, 50.0, 1.0)[allowed[i]]
            trans[m, i, allowed[i]] = rng.dirichlet(conc)
    return trans


def test_gated_matrices_match_the_limit_of_matrix_powers():
    trans = _gated_matrices(6, seed=4).reshape(2, 3, 5, 5)  # leading draw dims are kept
    pi = stationary_distribution(trans)
    assert pi.shape == (2, 3, 5)
    limit = np.array([np.linalg.matrix_power(p, 20_000)[0] for p in trans.reshape(-1, 5, 5)])
    np.testing.assert_allclose(pi.reshape(-1, 5), limit, atol=1e-10)
    np.testing.assert_allclose(np.einsum("...i,...ij->...j", pi, trans), pi, atol=1e-12)


def test_a_stage_no_row_enters_gets_share_zero():
    trans = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.5, 0.0, 0.5]])
    np.testing.assert_allclose(stationary_distribution(trans), [2 / 3, 1 / 3, 0.0], atol=1e-12)


@pytest.mark.parametrize("bad", [np.ones((2, 3)), np.array([[0.5, 0.6], [0.5, 0.5]]),
                                 np.array([[np.nan, 1.0], [0.5, 0.5]])])
def test_refuses_what_is_not_a_transition_matrix(bad):
    with pytest.raises(ValueError, match="trans must"):
        stationary_distribution(bad)
