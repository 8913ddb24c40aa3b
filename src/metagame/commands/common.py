"""Options and output shared by the commands: one helper adds every run option to a parser, one turns the parsed
arguments back into :class:`~metagame.run.RunOptions` (they mean the same as the Python keywords)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, get_args

from ..errors import MetagameError
from ..run.options import (Backend, BudgetWord, CheckpointMode, EstimatorName, Order, RunOptions, Value, Variant,
                           budget_from_text)

#: Python spellings in error messages -> the CLI's spellings (applied to errors a command prints)
CLI_SPELLINGS = {
    "pass budget=... (a number of attribution calls)": "pass --budget N (a number of attribution calls)",
    "budget=...": "--budget N",
    "pass budget >= ": "pass --budget ",
    "budget='auto'": "--budget auto",
    "pass seed=<int>": "pass --seed N",
    "trust_remote_code=True": "--trust-remote-code",
    "method_kwargs={'k': 5}": "--method-kwargs '{\"k\": 5}'",
    "method_kwargs": "--method-kwargs",
    "checkpoint_mode='overwrite'": "--checkpoint-mode overwrite",
    "mode='patch_maps'": "--mode patch_maps",
    "chat_template=False": "--no-chat-template",
    "device='cpu'": "--device cpu",
    "estimator='montecarlo'": "--estimator montecarlo",
    "pass a checkpoint path": "pass --checkpoint PATH",
    "backend='ray'": "--backend ray",
    "backend='local'": "--backend local",
    "num_gpus_per_worker": "--gpus-per-worker",
    "num_workers": "--workers",
    "ray_address": "--ray-address",
}


#: the application each explaining command serves (the key of the methods' ``applications``)
COMMAND_APPLICATIONS = {"similarity": "text_pair", "demo": "text_pair"}


def cli_spelling(message: str) -> str:
    """An error message with the Python keyword spellings replaced by the command-line flags."""
    for python, cli in CLI_SPELLINGS.items():
        message = message.replace(python, cli)
    return message


def add_run_options(p: argparse.ArgumentParser, default_method: str, *, out_default: str | None = None,
                    steps_default: int | None = None, ig_steps: bool = True) -> None:
    """Every run option of :class:`~metagame.run.RunOptions` as a flag, plus --method, --method-kwargs, --steps (IG's
    n_steps; left out with ``ig_steps=False`` for commands whose --steps means something else) and --out; defaults
    are the Python defaults."""
    d = RunOptions()
    g = p.add_argument_group("run options (the same as the Python keywords)")
    g.add_argument("--method", default=default_method, help=f"inner attribution method (default {default_method})")
    g.add_argument("--method-kwargs", default=None, metavar="JSON",
                   help='options of the inner method as JSON, e.g. \'{"n_steps": 64}\'')
    if ig_steps:
        g.add_argument("--steps", dest="ig_steps", type=int, default=steps_default,
                       help=f"quadrature steps of integrated_gradients (shorthand for --method-kwargs; default "
                            f"{steps_default or 32})")
    g.add_argument("--variant", default=d.variant, choices=get_args(Variant), help=f"default {d.variant}")
    g.add_argument("--value", default=d.value, choices=get_args(Value), help=f"outer value (default {d.value})")
    words = "|".join(get_args(BudgetWord))
    g.add_argument("--budget", type=_budget_arg, default=None, metavar=f"N|{words}",
                   help="attribution calls for a sampled estimate, or auto: sample until every standard error is at "
                        "most --tol (default 1%% of the largest first-order attribution; at most 100·d calls) "
                        "(default: exact)")
    g.add_argument("--estimator", default=d.estimator, choices=get_args(EstimatorName),
                   help=f"estimator of sampled runs (default {d.estimator})")
    g.add_argument("--seed", type=int, default=None, help="seed of the estimator")
    g.add_argument("--tol", type=float, default=None,
                   help="stop a sampled run once every standard error is at most TOL (alone: --budget auto)")
    g.add_argument("--order", type=int, default=d.order, choices=get_args(Order),
                   help="3 also computes the meta-meta-attributions T[i, j, k] (default 2)")
    g.add_argument("--checkpoint", default=None, metavar="PATH", help="save finished work to PATH (.npz; a folder with --prompts-file / --pairs-file) and resume from it")
    g.add_argument("--checkpoint-mode", default=d.checkpoint_mode, choices=get_args(CheckpointMode),
                   help=f"what to do with a checkpoint of another run (default {d.checkpoint_mode}: refuse it)")
    g.add_argument("--checkpoint-every", type=float, default=d.checkpoint_every, metavar="SECONDS",
                   help=f"seconds between checkpoint saves (default {d.checkpoint_every:g})")
    g.add_argument("--backend", default=d.backend, choices=get_args(Backend),
                   help="where attribution calls run: this process, or Ray workers (pip install 'metagame[ray]')")
    g.add_argument("--ray-address", dest="ray_address", default=None, metavar="ADDRESS",
                   help="Ray cluster: 'auto' (the running one) or ray://HOST:PORT (default: start a local Ray)")
    g.add_argument("--workers", dest="num_workers", type=int, default=None, metavar="N",
                   help="Ray workers (default: as many as the cluster's GPUs or CPUs allow)")
    g.add_argument("--gpus-per-worker", dest="num_gpus_per_worker", type=float, default=d.num_gpus_per_worker,
                   metavar="G", help="GPUs per Ray worker (0.5 shares one GPU between two workers; default 0: CPU)")
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show a progress bar")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    if out_default is None:
        g.add_argument("--out", required=True, help="output folder")
    else:
        g.add_argument("--out", default=out_default, help=f"output folder (default ./{out_default})")


def _budget_arg(text: str) -> int | str:
    """``--budget``: a positive integer or a :data:`~metagame.run.options.BudgetWord` (argparse reports the error)."""
    try:
        return budget_from_text(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_model_options(p: argparse.ArgumentParser, model: str, batch_size: int | None, *, device: bool = False,
                      remote_code: bool = True) -> None:
    """The options of every command that loads a model: ``--model`` (``model`` is its help), ``--batch-size``, and
    ``--device``/``--dtype`` and ``--trust-remote-code`` where the command supports them."""
    p.add_argument("--model", required=True, help=model)
    default = "by memory" if batch_size is None else str(batch_size)
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"rows per forward pass (default {default})")
    if device:
        p.add_argument("--device", default=None, help="torch device, e.g. cuda or cpu (default: where the model loads)")
        p.add_argument("--dtype", default=None, help="float32, bfloat16, float16, float64 or auto")
    if remote_code:
        p.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own Python code")


def explain_command(args: argparse.Namespace, build: Callable[[], Any]) -> tuple[Any, Any]:
    """The body every explaining command shares: check ``--out`` and the run options before any work, build the
    adapter, run :func:`metagame.explain`. Returns ``(adapter, result)``.

    ``build`` should go through an entry point's factory (:func:`~metagame.applications.common.build_adapter`): its
    recipe is then stored in the result, which rebuilds the adapter (:func:`metagame.evaluate.rebuild_adapter`)."""
    from ..run import explain
    from ..run.backend import set_recipe

    from ..methods.registry import check_method_for

    check_out_dir(args.out)
    options = run_options(args)
    check_method_for(args.method, method_kwargs(args), COMMAND_APPLICATIONS.get(args.command, args.command))
    adapter = build()
    if getattr(adapter, "recipe", None) is None:  # built through an entry point's factory, it has a named recipe
        set_recipe(adapter, build)  # else Ray workers (--backend ray) build their own copy the same way
    return adapter, explain(adapter, args.method, method_kwargs=method_kwargs(args), options=options)


def run_options(args: argparse.Namespace) -> RunOptions:
    """The :class:`~metagame.run.RunOptions` the parsed flags stand for."""
    return RunOptions.build(**{name: getattr(args, name) for name in RunOptions.names() if hasattr(args, name)})


def method_kwargs(args: argparse.Namespace) -> dict | None:
    """The inner method's options: --method-kwargs (JSON object) and --steps (IG's n_steps)."""
    out: dict[str, Any] = {}
    if getattr(args, "method_kwargs", None):
        try:
            parsed = json.loads(args.method_kwargs)
        except json.JSONDecodeError as e:
            raise MetagameError(f"--method-kwargs is not valid JSON ({e}); pass an object such as '{{\"n_steps\": 64}}'") from None
        if not isinstance(parsed, dict):
            raise MetagameError("--method-kwargs must be a JSON object such as '{\"n_steps\": 64}'")
        out.update(parsed)
    if getattr(args, "ig_steps", None) is not None:
        out["n_steps"] = args.ig_steps
    return out or None


def check_out_dir(path: str | os.PathLike) -> Path:
    """Fail before any work when ``--out`` cannot be a writable folder (an existing file, a path under a file, a
    read-only place)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise MetagameError(f"--out {str(out)!r} is an existing file, not a folder; pass a folder path")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise MetagameError(f"--out {str(out)!r} lies under the file {str(parent)!r}; pass a folder path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MetagameError(f"--out {str(out)!r} is not writable (no write permission on {str(parent)!r}); pass another folder")
    return out


def write_all(result: Any, out: str | os.PathLike) -> dict[str, Path]:
    """``write_outputs`` into ``out``; when writing fails anyway, the result is saved to a fallback file and the
    error says where, so a finished run is never lost."""
    from ..viz import write_outputs

    try:
        return write_outputs(result, out)
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="metagame-result-")) / "result.json"
        result.save(fallback)
        raise MetagameError(f"could not write the outputs to {str(out)!r} ({exc}); the result was saved to {fallback}") from None


def report(result, written: dict) -> None:
    """Print the summary (f(x), f(∅), the strongest directional pairs) and the written files."""
    from ..viz import print_summary

    print_summary(result)
    for name, path in written.items():
        print(f"wrote {name}: {path}")


def finish(result: Any, args: argparse.Namespace) -> int:
    """Write every output into ``--out`` and print the summary; returns the exit code."""
    report(result, write_all(result, args.out))
    return 0


def fail(command: str, error: Exception) -> int:
    """Print a command's error in CLI spellings; returns the exit code 2."""
    print(f"metagame {command}: error: {cli_spelling(str(error))}", file=sys.stderr)
    return 2


__all__ = [
    "add_model_options",
    "add_run_options",
    "explain_command",
    "check_out_dir",
    "cli_spelling",
    "fail",
    "finish",
    "method_kwargs",
    "report",
    "run_options",
    "write_all",
]
