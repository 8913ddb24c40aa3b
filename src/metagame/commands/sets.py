"""``--prompts-file`` / ``--pairs-file``: the commands over a set of inputs (one :class:`~metagame.ResultSet`).

Files: one prompt per line (blank lines skipped), or JSON Lines (``.jsonl``, or every line a JSON object) with
``prompt`` and optional ``answer`` / ``alternative``; pairs as TSV (two tab-separated columns per line) or JSON
Lines (``text_a``/``text_b``, or ``image``/``caption``; image paths relative to the file's folder). The output
folder holds the set: ``set.json``, ``inputs/<id>.json`` and ``inputs/<id>.html``, the aggregate pictures and
``report.html`` (the index).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from ..errors import MetagameError
from .common import check_out_dir, method_kwargs, run_options


def _lines(path: str | Path) -> list[tuple[int, str]]:
    file = Path(path)
    if not file.is_file():
        raise MetagameError(f"no input file at {str(file)!r}; pass the path of a text, TSV or JSON Lines file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MetagameError(f"{file} is not UTF-8 text ({e})") from None
    rows = [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise MetagameError(f"{file} holds no inputs (every line is blank)")
    return rows


def _is_jsonl(path: str | Path, rows: list[tuple[int, str]]) -> bool:
    return Path(path).suffix.lower() in (".jsonl", ".ndjson") or all(line.lstrip().startswith("{") for _, line in rows)


def _json(path: str | Path, n: int, line: str, fields: tuple[str, ...]) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise MetagameError(f"{path}, line {n}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise MetagameError(f"{path}, line {n}: expected a JSON object with {', '.join(fields)}")
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise MetagameError(f"{path}, line {n}: unknown field(s) {unknown}; use {', '.join(fields)}")
    return obj


def read_prompts_file(path: str | Path) -> list[Any]:
    """Prompts (strings), or dicts with ``prompt``/``answer``/``alternative`` from JSON Lines."""
    rows = _lines(path)
    if _is_jsonl(path, rows):
        return [_json(path, n, line, ("prompt", "answer", "alternative")) for n, line in rows]
    return [line for _, line in rows]


def read_pairs_file(path: str | Path, names: tuple[str, str], paths_first: bool = False) -> list[tuple[Any, Any]]:
    """Pairs from TSV (two columns) or JSON Lines (``names`` as fields); with ``paths_first`` the first element is a
    file path, read relative to the file's folder."""
    rows = _lines(path)
    pairs = []
    for n, line in rows:
        if _is_jsonl(path, rows):
            obj = _json(path, n, line, names)
            missing = [k for k in names if k not in obj]
            if missing:
                raise MetagameError(f"{path}, line {n}: missing field(s) {missing}")
            a, b = obj[names[0]], obj[names[1]]
        else:
            cols = line.split("\t")
            if len(cols) != 2:
                raise MetagameError(f"{path}, line {n}: {len(cols)} tab-separated columns; each line holds "
                                    f"{names[0]}<TAB>{names[1]}")
            a, b = cols
        if paths_first and isinstance(a, str):
            a = str((Path(path).parent / a)) if not Path(a).is_absolute() else a
        pairs.append((a, b))
    return pairs


def run_set_command(args: argparse.Namespace, explain_set: Callable[..., Any]) -> int:
    """Check ``--out`` and the run options, run ``explain_set(method=..., method_kwargs=..., options=...)``, write
    the set's files and print a summary; returns the exit code."""
    from ..viz.sets import write_set_outputs

    check_out_dir(args.out)
    folder = getattr(args, "checkpoint", None)  # a set's checkpoint is a folder (RunOptions takes .npz files)
    options = run_options(argparse.Namespace(**{**vars(args), "checkpoint": None}))
    extra = {} if folder is None else {"checkpoint": folder}
    rs = explain_set(method=args.method, method_kwargs=method_kwargs(args), options=options, **extra)
    written = write_set_outputs(rs, args.out)
    meta = rs.metadata
    print(f"{len(rs)} inputs ({meta.get('distinct_inputs')} distinct) in {meta.get('wall_seconds', 0):.1f} s")
    for rid, res in zip(rs.ids, rs.results):
        print(f"  {rid}: f(x) = {res.context.get('value_full', float('nan')):.4f}, {res.n_players} players")
    rows = rs.strongest(8, min_inputs=2) or rs.strongest(8)  # pairs seen in several inputs first
    print("strongest pairs across the set (source → target: mean φ ± stderr across inputs, inputs holding it):")
    for row in rows:
        print(f"  {row['source']} → {row['target']}: {row['mean']:+.4f} ± {row['stderr']:.4f} (n={row['n_inputs']})")
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0


__all__ = ["read_pairs_file", "read_prompts_file", "run_set_command"]
