"""Command-line options that choose the model (a :class:`~stressflow.models.spec.ModelSpec`),
shared by ``stressflow fit`` and ``stressflow evaluate``."""

from __future__ import annotations

import argparse

from stressflow.models.spec import EMISSIONS, STRUCTURES, ModelSpec

__all__ = ["MODELS", "add_model_options", "spec_from_args"]

#: Named starting points of the model options: ``default`` (``ModelSpec()``) and ``base``
#: (``ModelSpec.base()``, the four-stage model ordered on volatility).
MODELS = ("default", "base")


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Add the model options (an option left out takes the value of the ``--model`` preset)."""
    default = ModelSpec()
    p.add_argument("--model", choices=MODELS, default="default",
                   help="preset the options below start from: default (five stages, forced "
                        "flow identified by vol_surprise and entered from margin pressure "
                        "only, + bond_vol_surprise) or base (the four ladder stages ordered on "
                        "volatility, the model before the compulsion work)")
    p.add_argument("--emission", choices=EMISSIONS)
    p.add_argument("--transitions", choices=STRUCTURES,
                   help=f"structure of P (default: {default.transitions})")
    p.add_argument("--discretionary", choices=("on", "off"),
                   help="the fifth, discretionary-repricing stage (default: on)")
    p.add_argument("--stages", type=int, metavar="K",
                   help="number of stages K >= 2 (2: orderly, forced_flow; 3: + fragile; 4: "
                        "the ladder; 5: + discretionary; 6+: + stage_5, ...); default 5, or 4 "
                        "with --discretionary off or --model base")
    p.add_argument("--compulsion-feature", metavar="NAME|none",
                   help="observable whose highest stage mean names forced flow (default: "
                        f"{default.compulsion_feature}; none: forced flow = the stage highest "
                        "on volatility)")
    p.add_argument("--observables", metavar="NAME[,NAME...]|none",
                   help="observables beyond the four built-in ones (default: "
                        f"{','.join(default.observables) or 'none'})")
    p.add_argument("--stage-durations", metavar="D,...|none",
                   help="prior expected duration of each stage in trading days (default: "
                        f"{','.join(f'{d:g}' for d in default.stage_durations or ()) or 'none'}"
                        "; none: one stickiness for every stage)")
    p.add_argument("--transition-covariates", metavar="NAME[,NAME...]",
                   help="covariates driving the transition probabilities (time-varying P: "
                        "the covariates of day t-1 drive the move into day t); bundled: "
                        "ted, baa10y, vix, low_vol, d_ted, d_baa10y, d_vix, or a column of "
                        "the input file")
    p.add_argument("--transition-model", choices=("logit", "ladder"),
                   help="how the covariates act on P (default ladder when covariates are given)")


def spec_from_args(args) -> ModelSpec:
    """The ModelSpec the options describe; ``ValueError`` (with the option's meaning) if
    they are inconsistent."""
    preset = ModelSpec.base() if getattr(args, "model", "default") == "base" else ModelSpec()
    covariates = _names(args.transition_covariates) or ()
    observables = _names(args.observables)
    durations = _names(args.stage_durations)
    try:
        stage_durations = (preset.stage_durations if durations is None
                           else tuple(float(d) for d in durations) or None)
    except ValueError:
        raise ValueError(f"--stage-durations must be numbers or none, got "
                         f"{args.stage_durations!r}") from None
    n_stages = getattr(args, "stages", None)
    if args.discretionary is not None:
        discretionary = args.discretionary == "on"
    else:
        discretionary = None if n_stages is not None else preset.discretionary_stage
    if durations is None and stage_durations is not None:
        stage_durations = "framework"  # the preset's durations of the chosen stages
    compulsion = args.compulsion_feature
    if compulsion is not None and compulsion.strip().lower() == "none":
        compulsion = ""
    return ModelSpec(
        emission=args.emission or preset.emission,
        transitions=args.transitions or preset.transitions,
        discretionary_stage=discretionary,
        n_stages=n_stages,
        compulsion_feature=(preset.compulsion_feature if compulsion is None
                            else compulsion or None),
        observables=preset.observables if observables is None else observables,
        stage_durations=stage_durations,
        transition_model=args.transition_model or ("ladder" if covariates else "constant"),
        transition_covariates=covariates,
    )
