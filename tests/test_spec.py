"""``ModelSpec``: its options, defaults and stored form, and the transition structures it
allows (:func:`stressflow.models.spec.allowed_transitions`). Split from ``test_model.py``."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from stressflow.data import load_dataset
from stressflow.inference import fit
from stressflow.models import dims
from stressflow.models.spec import ModelSpec, allowed_transitions

K = len(dims.LADDER)
#: The sequential structure spelled out: orderly <-> fragile <-> margin_pressure <->
#: forced_flow, and any stage -> orderly.
SEQUENTIAL = np.array(
    [
        # orderly fragile margin forced   (to)
        [1, 1, 0, 0],  # from orderly
        [1, 1, 1, 0],  # from fragile
        [1, 1, 1, 1],  # from margin_pressure
        [1, 0, 1, 1],  # from forced_flow
    ],
    dtype=bool,
)


def test_allowed_transitions_matrices():
    assert_array_equal(allowed_transitions("full", K), np.ones((K, K), dtype=bool))
    seq = allowed_transitions("sequential", K)
    assert seq.dtype == bool
    assert_array_equal(seq, SEQUENTIAL)
    # spelled out by name
    names = dims.LADDER
    allowed = {(names[i], names[j]) for i, j in zip(*np.nonzero(seq), strict=True)}
    assert ("orderly", "margin_pressure") not in allowed
    assert ("orderly", "forced_flow") not in allowed
    assert ("fragile", "forced_flow") not in allowed
    assert ("forced_flow", "fragile") not in allowed
    assert all((s, "orderly") in allowed for s in names)
    assert all((s, s) in allowed for s in names)
    with pytest.raises(ValueError, match="transitions must be one of"):
        allowed_transitions("dense")


def test_sequential_five_stages_keep_the_ladder_and_connect_discretionary_to_all():
    seq = allowed_transitions("sequential", 5)
    assert_array_equal(seq[:4, :4], SEQUENTIAL)  # the ladder is unchanged
    assert seq[4].all() and seq[:, 4].all()      # discretionary: from and to every stage
    assert dims.stage_names(5)[4] == dims.DISCRETIONARY


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"emission": "cauchy"}, r"emission must be one of .*'cauchy'"),
        ({"transitions": "dense"}, r"transitions must be one of .*'dense'"),
        ({"stickiness": -1.0}, r"stickiness must be a finite number >= 0, got -1.0"),
        ({"stickiness": float("nan")}, r"stickiness must be a finite number >= 0"),
        ({"stickiness": float("inf")}, r"stickiness must be a finite number >= 0"),
        ({"mu_prior_sd": 0.0}, r"mu_prior_sd must be > 0, got 0.0"),
        ({"mu_prior_sd": -2.0}, r"mu_prior_sd must be > 0"),
        ({"mu_prior_sd": float("nan")}, r"mu_prior_sd must be > 0"),
    ],
)
def test_model_spec_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelSpec(**kwargs)


def test_model_spec_defaults_and_dict():
    spec = ModelSpec()
    assert spec.to_dict() == {
        "emission": "gaussian",
        "transitions": "gated",
        "stickiness": 20.0,
        "order_feature": "volatility",
        "compulsion_feature": "vol_surprise",
        "discretionary_stage": True,
        "mu_prior_sd": 2.0,
        "transition_model": "constant",
        "transition_covariates": [],
        "tvtp_prior_sd": 1.0,
        "stage_durations": [250.0, 250.0, 20.0, 7.0, 40.0],
        "duration_strength": 1000.0,
        "observables": ["vol_surprise", "bond_vol_surprise"],
        "n_stages": 5,
    }
    assert spec.n_stages == 5 and spec.stage_names == dims.STAGES
    base = ModelSpec.base()
    assert base.n_stages == 4 and base.stage_names == dims.LADDER
    assert base.compulsion_feature is None and base.transitions == "full"
    assert ModelSpec(**spec.to_dict()) == spec
    assert ModelSpec(stickiness=0).stickiness == 0


def test_model_spec_round_trips_and_reads_older_fit_files():
    spec = ModelSpec(emission="student_t", transitions="sequential", transition_model="ladder",
                     transition_covariates=("ted", "low_vol"), tvtp_prior_sd=0.5)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    # a schema-2 fit file stored only the first five options
    old = {"emission": "gaussian", "transitions": "full", "stickiness": 20.0,
           "order_feature": "volatility", "mu_prior_sd": 2.0}
    # ... and was fitted with one stickiness for every stage, not today's duration prior
    assert ModelSpec.from_dict(old) == ModelSpec.base()
    assert ModelSpec.from_dict(old) != ModelSpec()
    with pytest.raises(ValueError, match="unknown model options"):
        ModelSpec.from_dict({**old, "regime_count": 5})
    with pytest.raises(ValueError, match="needs at least one name"):
        ModelSpec(transition_model="logit")
    with pytest.raises(ValueError, match="need a time-varying"):
        ModelSpec(transition_covariates=("ted",))


def test_fit_refuses_a_spec_that_is_not_a_model_spec():
    """A model named by a string is refused before any work (it used to fail deep inside the
    fit with an AttributeError)."""
    with pytest.raises(TypeError, match=r"spec must be a ModelSpec \(e.g. ModelSpec\(\) or "
                       r"ModelSpec.base\(\)\) or None, got 'default'"):
        fit(load_dataset("sp500").loc["2004"], spec="default")
