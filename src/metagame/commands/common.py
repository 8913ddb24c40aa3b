"""Options and output shared by the commands: one helper adds every run option to a parser, one turns the parsed
arguments back into :class:`~metagame.run.RunOptions` (they mean the same as the Python keywords).

The run options' flags are written once, in :data:`RUN_FLAGS`: the parser is built from it (choices from the
option literals of :mod:`metagame.run.options`, defaults from ``RunOptions()``), and so are the command-line
spellings of error texts (``budget=...`` → ``--budget N``, ``backend='ray'`` → ``--backend ray``,
``num_workers`` → ``--workers``); :data:`CLI_SPELLINGS` keeps only the spellings of other commands' flags.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Union, get_args, get_origin, get_type_hints

from ..errors import MetagameError
from ..run.options import AUTO_MAX_CALLS_PER_PLAYER, AUTO_RELATIVE_TOL, BudgetWord, RunOptions, budget_from_text


@dataclass(frozen=True)
class RunFlag:
    """How one run option is written on the command line.

    Attributes:
        flag: the flag (``"--workers"`` for ``num_workers``).
        value: the word that stands for a value in error texts (``budget=...`` → ``--budget N``).
        argparse: the rest of its ``add_argument`` keywords (the default and choices come from
            :class:`~metagame.run.RunOptions`).
    """

    flag: str
    value: str = "VALUE"
    argparse: dict = field(default_factory=dict)


def _budget_arg(text: str) -> int | str:
    """``--budget``: a positive integer or a :data:`~metagame.run.options.BudgetWord` (argparse reports the error)."""
    try:
        return budget_from_text(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_DEFAULTS = RunOptions()
#: every run option's flag, in the order ``--help`` lists them (the one table the parser and the spellings read)
RUN_FLAGS: dict[str, RunFlag] = {
    "variant": RunFlag("--variant", "V", dict(help=f"default {_DEFAULTS.variant}")),
    "value": RunFlag("--value", "V", dict(help=f"outer value (default {_DEFAULTS.value})")),
    "budget": RunFlag("--budget", "N", dict(
        type=_budget_arg, metavar="N|" + "|".join(get_args(BudgetWord)),
        help=f"attribution calls for a sampled estimate, or auto: sample until every standard error is at most --tol "
             f"(default {AUTO_RELATIVE_TOL:.0%}% of the largest first-order attribution; at most "  # %% for argparse
             f"{AUTO_MAX_CALLS_PER_PLAYER}·d calls) (default: exact)")),
    "estimator": RunFlag("--estimator", "NAME", dict(help=f"estimator of sampled runs (default {_DEFAULTS.estimator})")),
    "seed": RunFlag("--seed", "N", dict(type=int, help="seed of the estimator")),
    "tol": RunFlag("--tol", "TOL", dict(
        type=float, help="stop a sampled run once every standard error is at most TOL (alone: --budget auto)")),
    "order": RunFlag("--order", "N", dict(
        type=int, help="3 also computes the meta-meta-attributions T[i, j, k] (default 2)")),
    "checkpoint": RunFlag("--checkpoint", "PATH", dict(
        metavar="PATH", help="save finished work to PATH (.npz; a folder with --prompts-file / --pairs-file) and resume "
                             "from it")),
    "checkpoint_mode": RunFlag("--checkpoint-mode", "MODE", dict(
        help=f"what to do with a checkpoint of another run (default {_DEFAULTS.checkpoint_mode}: refuse it)")),
    "checkpoint_every": RunFlag("--checkpoint-every", "SECONDS", dict(
        type=float, metavar="SECONDS", help=f"seconds between checkpoint saves (default {_DEFAULTS.checkpoint_every:g})")),
    "backend": RunFlag("--backend", "NAME", dict(
        help="where attribution calls run: this process, or Ray workers (pip install 'metagame[ray]')")),
    "ray_address": RunFlag("--ray-address", "ADDRESS", dict(
        metavar="ADDRESS", help="Ray cluster: 'auto' (the running one) or ray://HOST:PORT (default: start a local Ray)")),
    "num_workers": RunFlag("--workers", "N", dict(
        type=int, metavar="N", help="Ray workers (default: as many as the cluster's GPUs or CPUs allow)")),
    "num_gpus_per_worker": RunFlag("--gpus-per-worker", "G", dict(
        type=float, metavar="G", help="GPUs per Ray worker (0.5 shares one GPU between two workers; default 0: CPU)")),
    "progress": RunFlag("--progress", argparse=dict(action="store_true", help="always show a progress bar")),
}
if set(RUN_FLAGS) != set(RunOptions.names()):
    raise RuntimeError(f"RUN_FLAGS and RunOptions differ: {sorted(set(RUN_FLAGS) ^ set(RunOptions.names()))}")
_HINTS = get_type_hints(RunOptions)

#: Python spellings of the other commands' options in error messages -> their flags (the run options' spellings
#: come from :data:`RUN_FLAGS`)
CLI_SPELLINGS = {
    "trust_remote_code=True": "--trust-remote-code",
    "method_kwargs={'k': 5}": "--method-kwargs '{\"k\": 5}'",
    "method_kwargs": "--method-kwargs",
    "mode='patch_maps'": "--mode patch_maps",
    "chat_template=False": "--no-chat-template",
    "device='cpu'": "--device cpu",
}


def literal_values(hint: Any) -> tuple:
    """The values of the ``Literal`` (or of each ``Literal`` in a union) in a type hint; ``()`` without one."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (Union, types.UnionType):
        return tuple(v for part in get_args(hint) for v in literal_values(part))
    return ()


def _run_spelling_rules() -> list[tuple[re.Pattern, str]]:
    """``(pattern, replacement)`` per run option: ``name='choice'`` → ``--flag choice``; ``name=...`` and
    ``name=<int>`` → ``--flag VALUE``; ``name >= `` → ``--flag `` (numeric options); a bare ``name`` with an
    underscore (never prose) → ``--flag``."""
    rules = []
    for name, f in RUN_FLAGS.items():
        words = [str(c) for c in literal_values(_HINTS[name]) if isinstance(c, str)]  # budget: its BudgetWord
        if words:
            rules.append((re.compile(rf"\b{name}='({'|'.join(map(re.escape, words))})'"), f"{f.flag} \\1"))
        rules.append((re.compile(rf"\b{name}=(?:\.\.\.|<\w+>)"), f"{f.flag} {f.value}"))
        if "type" in f.argparse:  # a number (``pass budget >= 5`` → ``pass --budget 5``)
            rules.append((re.compile(rf"\b{name} >= "), f"{f.flag} "))
        if "_" in name:
            rules.append((re.compile(rf"\b{name}\b"), f.flag))
    return rules


_RUN_SPELLINGS = _run_spelling_rules()


#: the application each explaining command serves (the key of the methods' ``applications``)
COMMAND_APPLICATIONS = {"similarity": "text_pair", "demo": "text_pair"}


def cli_spelling(message: str) -> str:
    """An error message with the Python keyword spellings replaced by the command-line flags."""
    for python, cli in CLI_SPELLINGS.items():
        message = message.replace(python, cli)
    for pattern, cli in _RUN_SPELLINGS:
        message = pattern.sub(cli, message)
    return message


def add_run_options(p: argparse.ArgumentParser, default_method: str, *, out_default: str | None = None,
                    steps_default: int | None = None, ig_steps: bool = True) -> None:
    """Every run option of :class:`~metagame.run.RunOptions` as a flag (:data:`RUN_FLAGS`), plus --method,
    --method-kwargs, --steps (IG's n_steps; left out with ``ig_steps=False`` for commands whose --steps means something
    else) and --out; defaults are the Python defaults."""
    g = p.add_argument_group("run options (the same as the Python keywords)")
    g.add_argument("--method", default=default_method, help=f"inner attribution method (default {default_method})")
    g.add_argument("--method-kwargs", default=None, metavar="JSON",
                   help='options of the inner method as JSON, e.g. \'{"n_steps": 64}\'')
    if ig_steps:
        g.add_argument("--steps", dest="ig_steps", type=int, default=steps_default,
                       help=f"quadrature steps of integrated_gradients (shorthand for --method-kwargs; default "
                            f"{steps_default or 32})")
    for name, f in RUN_FLAGS.items():
        kwargs = dict(f.argparse)
        if get_origin(_HINTS[name]) is Literal:
            kwargs["choices"] = get_args(_HINTS[name])
        g.add_argument(f.flag, dest=name, default=getattr(_DEFAULTS, name), **kwargs)
    g.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    if out_default is None:
        g.add_argument("--out", required=True, help="output folder")
    else:
        g.add_argument("--out", default=out_default, help=f"output folder (default ./{out_default})")


def signature_option(factory: Callable[..., Any], name: str) -> dict[str, Any]:
    """``{"default": ..., "choices": ...}`` of a command flag that stands for ``factory``'s keyword ``name``: its
    Python default and the values of the ``Literal`` in its annotation (written once, in the signature)."""
    function = factory.__init__ if inspect.isclass(factory) else factory
    default = inspect.signature(function).parameters[name].default
    choices = literal_values(get_type_hints(function)[name])
    if not choices:
        raise TypeError(f"{getattr(factory, '__qualname__', factory)}'s {name} is not annotated with a Literal")
    return {"default": default, "choices": choices}


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
    from ..methods.registry import check_method_for
    from ..run import explain
    from ..run.backend import set_recipe

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
    "CLI_SPELLINGS",
    "RUN_FLAGS",
    "RunFlag",
    "add_model_options",
    "add_run_options",
    "explain_command",
    "check_out_dir",
    "cli_spelling",
    "fail",
    "finish",
    "literal_values",
    "method_kwargs",
    "report",
    "run_options",
    "signature_option",
    "write_all",
]
