"""What the ``similarity`` and ``vision`` commands share: a model, one pair of inputs given by two flags or a set of
pairs in a file, the adapter's own options, and the run options."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from ...commands.common import add_model_options, explain_command, finish
from ...errors import MetagameError


def add_pair_inputs(p: argparse.ArgumentParser, *, model_help: str, batch_size: int, first: tuple[str, str],
                    second: tuple[str, str], pairs_help: str) -> None:
    """``--model`` and its loading options, the two input flags (``(flag, help)`` each) and ``--pairs-file``."""
    add_model_options(p, model_help, batch_size, device=True)
    for flag, text in (first, second):
        p.add_argument(flag, default=None, help=text)
    p.add_argument("--pairs-file", default=None, metavar="FILE", help=pairs_help)


def run_pair(args: argparse.Namespace, *, command: str, factory: Callable, explain_set: Callable,
             first: tuple[str, str], second: tuple[str, str], file_fields: tuple[str, str], paths_first: bool,
             options: dict[str, Any]) -> int:
    """Run a pair command: the set in ``--pairs-file`` through ``explain_set``, or the one pair through ``factory``
    (by :func:`~metagame.applications.common.build_adapter`, so its recipe rebuilds it). ``first`` / ``second``:
    ``(flag, metavar)``; ``options``: the adapter's options read from the flags."""
    from ...applications.common import build_adapter

    (flag_a, meta_a), (flag_b, meta_b) = first, second
    a, b = (getattr(args, flag.lstrip("-").replace("-", "_")) for flag in (flag_a, flag_b))
    loading = dict(batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                   trust_remote_code=args.trust_remote_code)
    if args.pairs_file is not None:
        if a is not None or b is not None:
            raise MetagameError(f"pass {flag_a}/{flag_b} or --pairs-file, not both")
        from ...commands.sets import read_pairs_file, run_set_command

        pairs = read_pairs_file(args.pairs_file, file_fields, paths_first=paths_first)
        return run_set_command(args, lambda **kw: explain_set(args.model, pairs, **options, **loading, **kw))
    if a is None or b is None:
        raise MetagameError(f"pass {flag_a} {meta_a} and {flag_b} {meta_b} (or --pairs-file FILE)")
    _, result = explain_command(args, lambda: build_adapter(
        factory, f"metagame {command}", args.model, a, b, **options, **loading))
    return finish(result, args)


__all__ = ["add_pair_inputs", "run_pair"]
