"""The stress-stage model: vocabulary, numerics, components, the one evaluator, the PyMC graph.

- :mod:`stressflow.models.dims`: dimension names and the stage/feature vocabulary;
- :mod:`stressflow.models.numerics`: the HMM kernels (forward, smoother, Viterbi, FFBS as pure
  functions of ``(log_init, log_trans, log_lik)``), the PyTensor Op ``hmm_logp`` with its
  forward-backward gradient, and the vector maths they use;
- :mod:`stressflow.models.spec`: :class:`ModelSpec`, the model's components and options;
- :mod:`stressflow.models.emissions` / :mod:`stressflow.models.transitions`: the components,
  ``log p(y_t | stage_t = k)`` and ``log Pr(stage_t = j | stage_{t-1} = i)``;
- :mod:`stressflow.models.evaluate`: the one evaluator returning ``(log_init, log_trans,
  log_lik)`` for the PyMC graph and for NumPy post-processing;
- :mod:`stressflow.models.pymc_model`: :func:`build_model`, the PyMC model.

PyMC is imported only when the PyMC model is first built, so that importing the light modules
(``dims``, ``spec``, the kernels) stays fast.
"""

from stressflow.models.dims import FEATURES, STAGES
from stressflow.models.spec import ModelSpec, allowed_transitions

__all__ = ["FEATURES", "STAGES", "ModelSpec", "allowed_transitions", "build_model"]


def __getattr__(name):
    if name == "build_model":
        from stressflow.models.pymc_model import build_model

        return build_model
    raise AttributeError(f"module 'stressflow.models' has no attribute {name!r}")
