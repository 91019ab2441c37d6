"""Simulate a panel from the model (parameter recovery, calibration)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from stressflow.models import dims
from stressflow.models.panel.evaluate import check_params, evaluate
from stressflow.models.panel.spec import PanelSpec

__all__ = ["simulate_panel"]


def simulate_panel(spec: PanelSpec, params: dict, n_days: int, seed: int,
                   start: str = "2000-01-03") -> tuple[pd.DataFrame, np.ndarray]:
    """Draw ``(y_1..y_T, s_1..s_T)`` from the panel model at ``params``.

    The joint state starts uniform and moves by ``exp(log_trans)`` of
    :func:`stressflow.models.panel.evaluate.evaluate`; channel c of day t is
    ``Normal(mu[s_{a(c),t}, c], sigma[s_{a(c),t}, c])``.

    Returns
    -------
    features : DataFrame, shape (T, C)
        Columns ``spec.channels``, business-day index from ``start`` (named ``time``).
    stages : ndarray of int, shape (T, A)
        Every asset's simulated stage.
    """
    check_params(spec, params)
    rng = np.random.default_rng(seed)
    dummy = {"design": np.zeros((1, 3 * len(spec.channels))), "offset": np.zeros(1)}
    log_init, log_trans, _ = evaluate(spec, params, dummy)
    trans = np.exp(log_trans)
    joint = np.empty(n_days, dtype=np.int64)
    joint[0] = rng.choice(spec.n_joint, p=np.exp(log_init))
    for t in range(1, n_days):
        joint[t] = rng.choice(spec.n_joint, p=trans[joint[t - 1]])
    stages = spec.joint_digits()[joint]
    own = stages[:, spec.channel_asset_index]  # (T, C)
    cols = np.arange(len(spec.channels))
    y = rng.normal(params["mu"][own, cols], params["sigma"][own, cols])
    index = pd.bdate_range(start, periods=n_days, name=dims.TIME)
    frame = pd.DataFrame(y, index=index, columns=pd.Index(spec.channels, name=dims.CHANNEL))
    return frame, stages
