"""Options and output shared by the commands."""

from __future__ import annotations

import argparse


def add_common(
    p: argparse.ArgumentParser,
    default_method: str,
    *,
    out_default: str | None = None,
    steps_default: int | None = None,
    remote_code: bool = True,
) -> None:
    """Options every explaining command takes: method, steps, budget, seed, out (and --trust-remote-code)."""
    p.add_argument("--method", default=default_method, help=f"inner attribution method (default {default_method})")
    p.add_argument(
        "--steps", type=int, default=steps_default,
        help=f"quadrature steps of integrated_gradients (default {steps_default or 32})",
    )
    p.add_argument("--budget", type=int, default=None, help="attribution calls for a sampling estimate (default: exact)")
    p.add_argument("--seed", type=int, default=None, help="seed of the estimator")
    if remote_code:
        p.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own Python code")
    if out_default is None:
        p.add_argument("--out", required=True, help="output folder")
    else:
        p.add_argument("--out", default=out_default, help=f"output folder (default ./{out_default})")


def method_kwargs(args: argparse.Namespace) -> dict | None:
    """``{"n_steps": ...}`` when --steps was given."""
    return {"n_steps": args.steps} if args.steps is not None else None


def report(result, written: dict) -> None:
    """Print the summary (f(x), f(∅), the strongest directional pairs) and the written files."""
    from ..viz import print_summary

    print_summary(result)
    for name, path in written.items():
        print(f"wrote {name}: {path}")
