"""``metagame evaluate``: faithfulness, insertion/deletion and agreement metrics of saved results, side by side.

    metagame evaluate RESULT.json [RESULT.json ...] --out DIR [--annotations FILE] [--model PATH | --no-model]
                      [--stii] [--no-baselines] [--p 0.5 0.1] [--budget N] [--seed S] [--order meta]

The results must explain the same input (same players). Metrics that need the model (surrogate R², AID) rebuild
the adapter from the first result's stored metadata and context (text pairs, CLIP/SigLIP (scalar or patch maps) with
the image on disk, causal LMs; the model name/path stored in the file, or ``--model``) and check it against the
stored f(x). Annotation metrics (Recall@K, pointing game, IoU, AP) need only the results and ``--annotations``;
``--no-model`` skips the model metrics.
"""

from __future__ import annotations

import argparse

from ..evaluate.compare import compare as _compare
from .common import signature_option

HELP = "evaluate saved results side by side: surrogate R², insertion/deletion AID, Recall@K of annotated pairs"
DESCRIPTION = (
    "Scores one or more result.json files of the same input. With the model (rebuilt from the first result, "
    "or --model): surrogate R² of M[i,i] + Σ_{j∈T} M[i,j] against φ_i(x_{T∪i}) and the insertion/deletion "
    "area (AID) of f. With --annotations (JSON: {\"pairs\": [[a, b], ...], \"directed\": false, \"regions\": "
    "{word: mask}}): Recall@K of annotated pairs, pointing game, IoU and AP. Writes comparison.csv, "
    "comparison.md, comparison.json and comparison.png into --out."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``evaluate`` command's arguments."""
    p.add_argument("results", nargs="+", help="result.json files of the same input")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--annotations", default=None, help="annotation JSON file (pairs and/or regions)")
    p.add_argument("--label", action="append", default=None, help="a table label per result, in order (repeat the option)")
    p.add_argument("--model", default=None, help="model name or folder to use instead of the one stored in the result")
    p.add_argument("--no-model", action="store_true", help="skip the metrics that need the model (R², AID)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own Python code")
    p.add_argument("--stii", action="store_true", help="add the exact Shapley-Taylor index (needs the model)")
    p.add_argument("--no-baselines", action="store_true", help="do not add the first-order baseline rows")
    p.add_argument("--p", type=float, nargs="+", default=[0.5, 0.1], help="presence probabilities of the R² design (default 0.5 0.1)")
    p.add_argument("--budget", type=int, default=512, help="coalitions per p for the R² estimate (default 512; 0: enumerate all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the R² design and of the random orders (default 0)")
    p.add_argument("--order", **signature_option(_compare, "order"),
                   help="player order read off each result for AID (default meta: row + column mass)")
    p.add_argument("--n-random", type=int, default=32, help="random orders for the AID chance level (default 32)")
    p.add_argument("--max-fraction", type=float, default=0.15, help="Recall@K range: top fraction of the d(d-1) pairs (default 0.15)")
    p.add_argument("--recall-direction", **signature_option(_compare, "recall_direction"),
                   help="Recall@K finds a pair in either direction (better, default) or only as annotated (directed annotations)")


def run(args: argparse.Namespace) -> int:
    """Run ``metagame evaluate``; returns the exit code."""
    from ..errors import MetagameError
    from ..evaluate import compare, rebuild_adapter
    from ..evaluate._shared import label
    from ..results.result import MetaAttribution

    results = [MetaAttribution.load(path) for path in args.results]
    if args.label is not None and len(args.label) != len(results):
        raise MetagameError(f"got {len(args.label)} --label options for {len(results)} results; give one label per result")
    labels = args.label or [label(r) for r in results]
    labelled: dict[str, MetaAttribution] = {}
    for lab, res in zip(labels, results):
        name, k = lab, 2
        while name in labelled:
            name, k = f"{lab} #{k}", k + 1
        labelled[name] = res
    if args.no_model and args.annotations is None:
        raise MetagameError("--no-model leaves only the annotation metrics; pass --annotations FILE")
    adapter = None
    if not args.no_model:
        adapter = rebuild_adapter(results[0], model=args.model, trust_remote_code=args.trust_remote_code)
        from ..evaluate import verify_adapter

        for res in results[1:]:
            verify_adapter(res, adapter)
    cmp = compare(
        labelled, adapter, annotations=args.annotations, baselines=not args.no_baselines, stii=args.stii,
        p=tuple(args.p), budget=None if args.budget == 0 else args.budget, seed=args.seed, order=args.order,
        n_random=args.n_random, max_fraction=args.max_fraction, recall_direction=args.recall_direction,
    )
    print(cmp.to_markdown())
    for name, path in cmp.save(args.out).items():
        print(f"wrote {name}: {path}")
    return 0
