"""Panel (multi-asset) model on the bundled US markets: cost, fits, lead-lag (issue 12).

    PYTHONPATH=. .venv/bin/python bench/panel_us.py cost
    PYTHONPATH=. .venv/bin/python bench/panel_us.py fit --coupling spillover --save /tmp/us.nc
    PYTHONPATH=. .venv/bin/python bench/panel_us.py pair vw   # S&P 500 + VW 2005-2009
    PYTHONPATH=. .venv/bin/python bench/panel_us.py pair gme --window 2002-02-13 2018-12-31
    PYTHONPATH=. .venv/bin/python bench/panel_us.py report /tmp/us.nc --out panel_spillover.md

``cost``: one log-density + gradient evaluation (the model's log density compiled with
PyTensor's numba backend) at T = 5,000 for A = 1, 3, 5 assets of the US panel, K = 2 stages
each, at the fit's start values (each asset's EM optimum). ``fit``: the whole bundled panel;
writes ``bench/results/panel_<coupling>.md`` with convergence, timings, PSIS-LOO, the
spillover coefficients, the 2007-2008 lead table and migration probabilities. ``pair``: the
S&P 500 with one single name, to see whether the name's squeeze stays local.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import arviz as az
import pandas as pd
from stressflow.data.panel import PANELS, AssetSource, prepare_panel
from stressflow.inference.apps.migration import (
    lead_table,
    migration_table,
    panel_spec,
    sample_asset_paths,
)
from stressflow.inference.fitting.panel_fit import fit_panel, panel_start
from stressflow.inference.postprocess.panel_summary import convergence
from stressflow.models.panel import PanelSpec
from stressflow.models.panel.pymc_model import build_panel_model

from bench.common import markdown_table

RESULTS = Path(__file__).parent / "results"
US = PANELS["us_markets"]


def cost(n_days: int = 5000, repeats: int = 200) -> str:
    import pytensor
    from pymc.initial_point import make_initial_point_fn

    panel = prepare_panel("us_markets")
    lines = ["| assets A | joint states | channels | ms per logp+grad |", "|---|---|---|---|"]
    for names in (["sp500"], ["sp500", "baa10y", "ted"], list(US)):
        sub = prepare_panel({n: US[n] for n in names}, start=panel.features.index[-n_days],
                            end=panel.features.index[-1])
        spec = PanelSpec.from_panel(sub)
        model = build_panel_model(sub.features, spec)
        values = model.value_vars
        logp = model.logp()
        fn = pytensor.function(values, [logp, *pytensor.grad(logp, values)], mode="NUMBA")
        # at the fit's start (each asset's EM optimum): the separated emissions of a real fit,
        # which the default initial point (all stage means near 0) does not have
        point = make_initial_point_fn(model=model, overrides=panel_start(sub, spec, 0),
                                      jitter_rvs=set(), return_transformed=True)(0)
        args = [point[v.name] for v in values]
        fn(*args)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn(*args)
        ms = (time.perf_counter() - t0) / repeats * 1e3
        lines.append(f"| {len(names)} | {spec.n_joint} | {len(spec.channels)} | {ms:.2f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def co_occurrence(fit) -> pd.DataFrame:
    """Per asset pair: the mean over days of ``Pr(s_a = top, s_b = top | y_1..y_T)`` from the
    stored joint-state probabilities, each asset's share of top-stage days, and their lift."""
    spec = panel_spec(fit)
    digits = spec.joint_digits()
    joint = fit["stages"]["joint_smoothed"].values  # (T, J)
    top = digits == spec.n_stages - 1  # (J, A)
    share = joint @ top  # (T, A)
    rows = []
    for i, a in enumerate(spec.assets):
        for j in range(i + 1, spec.n_assets):
            both = float((joint @ (top[:, i] & top[:, j])).mean())
            sa, sb = float(share[:, i].mean()), float(share[:, j].mean())
            rows.append({"a": a, "b": spec.assets[j], "share_a": sa, "share_b": sb,
                         "both": both, "lift": both / (sa * sb)})
    return pd.DataFrame(rows)


def report(fit, title: str, window=("2007-01-01", "2008-12-31")) -> str:
    post = fit["posterior"].to_dataset()
    conv = convergence(fit)  # the zero diagonal of spillover left out
    worst, min_ess, div = conv["max_rhat"], conv["min_ess"], conv["divergences"]
    loo = az.loo(fit, var_name="y")
    spill = post["spillover"] if "spillover" in post else None
    lines = [f"# {title}", "", f"timings: {fit.attrs['timings']}",
             f"max R-hat {worst:.3f}, min bulk ESS {min_ess:.0f}, divergences {div}",
             f"PSIS-LOO elpd {loo.elpd:.1f} (se {loo.se:.1f})", ""]
    share = fit["stages"]["smoothed"].isel(stage=-1).mean("time").to_pandas()
    lines += ["Share of days in each asset's top stage (smoothed):", "",
              markdown_table(share.rename("share").to_frame().reset_index()), ""]
    if spill is not None:
        q = spill.quantile([0.05, 0.5, 0.95], ("chain", "draw"))
        rows = []
        for a in spill["asset"].values:
            for b in spill["asset_from"].values:
                if a != b:
                    v = q.sel(asset=a, asset_from=b).values
                    rows.append({"from": b, "to": a, "q05": v[0], "median": v[1], "q95": v[2]})
        lines += ["Spillover (log-odds added to `to`'s move into its top stage when `from` was "
                  "in its top stage the day before):", "",
                  markdown_table(pd.DataFrame(rows).reset_index()), ""]
    lines += ["Co-occurrence of the top stages (smoothed joint-state probabilities): "
              "`both` = mean over days of Pr(s_a = top, s_b = top | y), `lift` = both / "
              "(share_a share_b); 1 = as if independent, 1 / share_b at most = b top whenever "
              "a is:", "", markdown_table(co_occurrence(fit).reset_index()), ""]
    paths = sample_asset_paths(fit, n_draws=200, paths_per_draw=5, seed=0)
    lines += [f"Lead table {window[0]}..{window[1]} (onset = first run of >= 5 top-stage days; "
              "lead = onset(follower) - onset(leader), trading days; 90% interval):", "",
              markdown_table(lead_table(paths, *window).reset_index()), "",
              "Migration probabilities in the same window (90% interval across draws):", "",
              markdown_table(migration_table(paths, *window).reset_index()), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["cost", "fit", "pair", "report"])
    parser.add_argument("name", nargs="?", default="vw")
    parser.add_argument("--coupling", default="spillover")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--save")
    parser.add_argument("--out", default="panel_report.md")
    parser.add_argument("--title")
    parser.add_argument("--window", nargs=2)
    parser.add_argument("--assets", nargs="+", help="a subset of the US panel's assets")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    RESULTS.mkdir(exist_ok=True)
    if args.part == "cost":
        text = "# Panel model: cost of one log-density + gradient, T = 5,000, K = 2\n\n" + cost()
        (RESULTS / "panel_cost.md").write_text(text + "\n")
        return 0
    kw = dict(chains=args.chains, draws=args.draws, tune=args.tune, seed=0)
    if args.part == "report":  # rewrite a saved fit's report: report FILE.nc OUT.md TITLE..
        import xarray as xr

        fit = xr.open_datatree(args.name).load()
        window = ("2007-01-01", "2008-12-31") if args.window is None else tuple(args.window)
        text = report(fit, args.title or args.name, window)
        (RESULTS / args.out).write_text(text + "\n")
        print(text)
        return 0
    if args.part == "fit":
        names = args.assets or list(US)
        panel = prepare_panel({n: US[n] for n in names}, start="1996-12-31", end="2017-10-30")
        fit = fit_panel(panel, coupling=args.coupling, **kw)
        title = f"US markets panel {names}, coupling={args.coupling}, {kw}"
        out = RESULTS / f"panel_{'_'.join(names) if args.assets else 'us'}_{args.coupling}.md"
    else:
        start, end = args.window or ("2005-01-01", "2009-12-31")
        panel = prepare_panel({"sp500": US["sp500"], args.name: AssetSource(args.name)},
                              start=start, end=end)
        fit = fit_panel(panel, **kw)
        title = f"S&P 500 + {args.name} {start}..{end}, coupling=spillover, {kw}"
        out = RESULTS / (f"panel_pair_{args.name}.md" if args.window is None
                         else f"panel_pair_{args.name}_{start[:4]}_{end[:4]}.md")
    if args.save:
        fit.to_netcdf(args.save)
    text = report(fit, title, ("2007-01-01", "2008-12-31") if args.part == "fit"
                  else ("2008-09-01", "2008-12-31"))
    out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
