"""How long a window the default model needs before its stage probabilities mean what they say:
the reliability of the EM point estimate's stage probabilities on data simulated from the
prior, by series length.

For each length T (``--lengths``) and ``--n-sims`` draws of theta from the model's prior
(``run_sbc.prior_draws``), simulate T days (``run_sbc.simulate``), find the EM optimum from
``--n-starts`` k-means seeds as the fit does (:func:`stressflow.inference.fitting.initialize.
em_search`, its ``point``), and record at that point the smoothed ``Pr(stage_t = k | y_1..y_T,
theta_hat)`` and filtered ``Pr(stage_t = k | y_1..y_t, theta_hat)`` against the true stages
(``run_sbc.reliability_rows``), plus the share of days whose most probable stage is the true
one. A plug-in estimate, not the posterior: it ignores parameter uncertainty, so it measures
whether the data identify the stages at that length (label errors where a stage is sparse),
not the calibration of NUTS (that is ``run_sbc.py``).

Usage::

    PYTHONPATH=. python bench/sbc/em_reliability.py --n-sims 40 \
        --out bench/results/em_reliability.csv
    PYTHONPATH=. python bench/sbc/reliability.py bench/results/em_reliability.csv \
        --png bench/results/em_reliability.png --md bench/results/em_reliability.md
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from stressflow.inference.fitting.initialize import em_search
from stressflow.models.evaluate import evaluate, model_data
from stressflow.models.numerics import kernels

from bench.sbc.run_sbc import (
    MODELS,
    append_rows,
    model_features,
    prepared,
    prior_draws,
    reliability_rows,
    simulate,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="default")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000, 4000, 8570])
    parser.add_argument("--n-sims", type=int, default=40)
    parser.add_argument("--n-starts", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/em_reliability.csv")
    args = parser.parse_args(argv)

    spec = MODELS[args.model]()
    names = model_features(spec)
    out = Path(args.out)
    out.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thetas = prior_draws(spec, args.seed, n=args.n_sims)
    for n_days in args.lengths:
        t0 = time.perf_counter()
        correct = []
        for sim, theta in enumerate(thetas):
            rng = np.random.default_rng([20183, args.seed, n_days, sim])
            stages, y = simulate(theta, n_days, rng)
            features = prepared(y, names).features
            point = em_search(features, spec, sim, n_starts=args.n_starts).point
            log_init, log_trans, log_lik = evaluate(spec, point, model_data(spec, features))
            smoothed = kernels.smooth(log_init, log_trans, log_lik)[0]
            filtered = kernels.filter_probs(log_init, log_trans, log_lik)[0]
            rows = reliability_rows(sim, stages, {"smoothed": smoothed, "filtered": filtered},
                                    spec.stage_names)
            append_rows(out, [{"n_days": n_days, **r} for r in rows])
            correct.append(float((smoothed.argmax(axis=1) == stages).mean()))
        print(f"T = {n_days}: {len(thetas)} simulations in {time.perf_counter() - t0:.0f} s; "
              f"days whose most probable smoothed stage is the true one: median "
              f"{np.median(correct):.3f}, 10% quantile {np.quantile(correct, 0.1):.3f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
