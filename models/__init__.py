"""The stress-stage model: stage vocabulary, HMM kernels, emissions and the PyMC model.

- :mod:`stressflow.models.dims`: dimension names and the stage/feature vocabulary;
- :mod:`stressflow.models.numerics.kernels`: forward, smoother, Viterbi and FFBS as pure functions
of
  ``(log_init[K], log_trans[K, K], log_lik[T, K])``;
- :mod:`stressflow.models.numerics.ops`: the PyTensor Op ``hmm_logp`` with its forward-backward
gradient;
- :mod:`stressflow.models.emissions`: ``log p(y_t | stage_t = k)``;
- :mod:`stressflow.models.pymc_model`: :func:`build_model` and :class:`ModelSpec`.

PyMC is imported only when the model itself is first used, so that importing the light
modules (``dims``, ``kernels``) stays fast.
"""

from stressflow.models.dims import FEATURES, STAGES

__all__ = ["FEATURES", "STAGES", "ModelSpec", "allowed_transitions", "build_model"]

_LAZY = {"ModelSpec", "allowed_transitions", "build_model"}


def __getattr__(name):
    if name in _LAZY:
        from stressflow.models import pymc_model

        return getattr(pymc_model, name)
    raise AttributeError(f"module 'stressflow.models' has no attribute {name!r}")
