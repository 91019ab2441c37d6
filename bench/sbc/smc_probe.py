"""Does a tempering sampler mix the SBC worlds NUTS does not? One world, PyMC's SMC.

The SBC of the default model at T = 1,000 (``run_sbc.py``, ``bench/results/sbc.md``) finds the
ranks of ``mu`` and ``sigma`` over-dispersed because the chains of a world with nearly empty
stages settle in different stage configurations and no tuning mixes them. Sequential Monte
Carlo (``pymc.sample_smc``: tempering from the prior, independent Metropolis-Hastings moves)
is the standard sampler for multimodal posteriors. This script fits one simulated world of the
SBC (same prior draw and data as ``run_sbc.py --seed SEED``) with it and prints the wall time
and the ranks of the true values among 19 thinned draws (``run_sbc.ranks``), to compare with
the NUTS row of the same seed in ``bench/results/sbc_default_split_ranks_L19.csv``.

Usage::

    PYTHONPATH=. python bench/sbc/smc_probe.py --seed 1 --draws 1000 --chains 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pymc as pm
from stressflow.models.pymc_model import build_model

from bench.sbc.run_sbc import MODELS, model_features, prepared, prior_draw, ranks, simulate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    args = parser.parse_args(argv)
    spec = MODELS["default"]()
    rng = np.random.default_rng([20181, args.seed])
    theta = prior_draw(spec, rng)
    stages, y = simulate(theta, 1000, rng)
    model = build_model(prepared(y, model_features(spec)).features, spec)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), model:
        warnings.simplefilter("ignore")
        idata = pm.sample_smc(draws=args.draws, chains=args.chains, cores=1,
                              random_seed=args.seed, progressbar=False,
                              compute_convergence_checks=False)
    seconds = time.perf_counter() - t0
    got = ranks(theta, idata.posterior, 19)
    print(f"seed {args.seed}: {seconds:.0f} s; days per stage {np.bincount(stages, minlength=5)}")
    for name in ("mu", "sigma", "P"):
        values = np.array([v for k, v in got.items() if k.startswith(name + "[")])
        extreme = int(((values == 0) | (values == 19)).sum())
        print(f"  {name}: {len(values)} ranks, {extreme} at 0 or 19 "
              f"(uniform: {2 * len(values) / 20:.1f} expected); ranks {sorted(values.tolist())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
