"""The panel (multi-asset) stage model: several assets' stages as one joint-state HMM.

- :mod:`~stressflow.models.panel.spec`: :class:`PanelSpec`, the couplings and their formulas;
- :mod:`~stressflow.models.panel.evaluate`: the one evaluator ``(log_init, log_trans,
  log_lik)`` over joint states, and per-asset marginals of joint probabilities;
- :mod:`~stressflow.models.panel.pymc_model`: the PyMC model.
"""

from stressflow.models.panel.evaluate import asset_marginals, evaluate, panel_data, param_names
from stressflow.models.panel.spec import COUPLINGS, MAX_JOINT_STATES, PanelSpec

__all__ = ["PanelSpec", "COUPLINGS", "MAX_JOINT_STATES", "evaluate", "panel_data",
           "param_names", "asset_marginals"]
