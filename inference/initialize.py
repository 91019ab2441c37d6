"""Data-driven starting points for the sampler.

A naive start (e.g. stage means at feature quantiles) leaves NUTS chains in different modes of
an HMM posterior. stressflow starts every chain from one k-means solution on the standardised
observables, relabelled by the ordering feature, then perturbs each chain by a small seeded
jitter in the unconstrained space so that the chains are not identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from stressflow.models import dims
from stressflow.models.stress_hmm import ModelSpec, allowed_transitions

__all__ = ["kmeans_start"]

_MIN_SIGMA = 0.05


def kmeans_start(features: pd.DataFrame, spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """Initial values of the model's free variables from k-means with K = 4 clusters.

    Clusters are fitted on the days where every feature is observed, relabelled so that their
    means on ``spec.order_feature`` increase (orderly ... forced_flow), and turned into stage
    means, stage scales and a transition matrix estimated from the sequence of cluster labels
    (with the Dirichlet prior's concentration added as pseudo-counts).

    Returns
    -------
    dict
        Constrained-space values keyed by model variable name (``mu_order``, ``mu_other``,
        ``sigma``, ``P`` or ``P_row_<stage>``, and ``nu`` for Student-t emissions).
    """
    n_stages = len(dims.STAGES)
    names = [str(c) for c in features.columns]
    y = features.to_numpy(dtype=np.float64)
    complete = np.isfinite(y).all(axis=1)
    if complete.sum() < 10 * n_stages:
        raise ValueError(
            f"only {int(complete.sum())} days have every feature observed; at least "
            f"{10 * n_stages} are needed to initialise {n_stages} stages"
        )
    km = KMeans(n_clusters=n_stages, n_init=10, random_state=seed).fit(y[complete])
    order_idx = names.index(spec.order_feature)
    relabel = np.argsort(np.argsort(km.cluster_centers_[:, order_idx]))
    labels = relabel[km.labels_]

    mu = np.empty((n_stages, len(names)))
    sigma = np.empty((n_stages, len(names)))
    for k in range(n_stages):
        members = y[complete][labels == k]
        mu[k] = members.mean(axis=0)
        sigma[k] = np.maximum(members.std(axis=0), _MIN_SIGMA) if len(members) > 1 else 1.0
    # strictly increasing means on the ordering feature (the ordered transform requires it)
    mu_order = np.sort(mu[:, order_idx])
    mu_order = mu_order + np.arange(n_stages) * 1e-3

    allowed = allowed_transitions(spec.transitions, n_stages)
    counts = np.where(np.eye(n_stages, dtype=bool), 1.0 + spec.stickiness, 1.0)
    np.add.at(counts, (labels[:-1], labels[1:]), 1.0)
    counts = np.where(allowed, counts, 0.0)
    trans = counts / counts.sum(axis=1, keepdims=True)

    start: dict[str, np.ndarray] = {
        "mu_order": mu_order,
        "sigma": sigma,
    }
    other = [d for d in range(len(names)) if d != order_idx]
    if other:
        start["mu_other"] = mu[:, other]
    if allowed.all():
        start["P"] = trans
    else:
        for i, stage in enumerate(dims.STAGES):
            row = trans[i, allowed[i]]
            start[f"P_row_{stage}"] = row / row.sum()
    if spec.emission == "student_t":
        start["nu"] = np.full(n_stages, 10.0)
    return start
