"""The driver of every sampled run: pays the mandatory coalitions, enumerates affordable sizes, draws units in
batches until the budget (or ``tol``) is reached, checkpoints, and finishes the estimate (exact diagonal,
Student-t scaling, exact row sums). Estimators are looked up by name; the driver never checks their type."""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import numpy as np

from ...errors import MetagameError
from ...methods.base import AttributionMethod
from ...models.base import ModelAdapter
from ..backend import make_attribution_game
from ..checkpoint import Checkpoint
from ..options import AUTO_MAX_CALLS_PER_PLAYER, AUTO_RELATIVE_TOL, RunOptions
from ..progress import progress_bar
from .base import Estimate, Estimator, Rows, t_factors
from .evaluator import DEDUPLICATE_MAX_PLAYERS, Evaluator
from .montecarlo import MonteCarlo
from .plan import draw_units, make_plan, sizes_rows
from .regression import Regression
from .sparse import Sparse
from .stratified import Stratified

#: estimator classes by name
ESTIMATORS: dict[str, type[Estimator]] = {cls.name: cls for cls in (Stratified, Regression, MonteCarlo, Sparse)}
#: largest d for which ``auto`` picks the stratified estimator (one Gaussian process per target)
STRATIFIED_MAX_PLAYERS = 24
#: beyond STRATIFIED_MAX_PLAYERS and below SPARSE_MIN_CALLS_PER_PLAYER·d calls (too few rows per target for the
#: sparse surrogate), ``auto`` picks regression up to this d and montecarlo beyond
REGRESSION_MAX_PLAYERS = 64
#: ``budget="auto"``: the plan (sizes enumerated up front, size distribution of the draws) is made for this many calls
#: per player; the run then draws units from it until ``tol`` or the cap
AUTO_PLAN_CALLS_PER_PLAYER = 20
#: with ``tol``, the worst standard error is checked after the first batch and then whenever the calls have grown by
#: (worst/tol)² (what 1/√calls predicts), clipped to [this, 2]; deterministic, so a seed reproduces where a run stops
TOL_CHECK_GROWTH = 1.25
#: the progress bar's worst stderr is refreshed at most every this many seconds, and at most 10% of the run's time
PROGRESS_STDERR_SECONDS = 2.0
#: calls per player from which ``auto`` picks the sparse estimator for d > STRATIFIED_MAX_PLAYERS
SPARSE_MIN_CALLS_PER_PLAYER = 8


def resolve_estimator(estimator: str, d: int, value: str, budget: int | None = None) -> str:
    """The estimator ``auto`` stands for, or an error when the named one cannot compute ``value``.

    Shapley: stratified for d ≤ 24; beyond, sparse once the budget reaches 8d calls (measured in docs/estimators.md
    "Many players": 20d calls, d = 32–256), else regression for d ≤ 64 and montecarlo beyond. Banzhaf: montecarlo.
    """
    if estimator == "auto":
        if value != "shapley":
            return "montecarlo"
        if d <= STRATIFIED_MAX_PLAYERS:
            return "stratified"
        if budget is None or budget >= SPARSE_MIN_CALLS_PER_PLAYER * d:
            return "sparse"
        return "regression" if d <= REGRESSION_MAX_PLAYERS else "montecarlo"
    if value not in ESTIMATORS[estimator].values:
        raise MetagameError(
            f"estimator={estimator!r} fits the Shapley value only; for value={value!r} use estimator='montecarlo' "
            "(or 'auto')"
        )
    return estimator


def estimate_meta_attributions(
    model: ModelAdapter,
    method: AttributionMethod,
    options: RunOptions,
    checkpoint_for: Callable[[str], Checkpoint | None] | None = None,
    batch_size: int | None = None,
) -> Estimate:
    """Estimate M[i, j] = φ_{j→i} from at most ``options.budget`` attribution calls shared by all targets.

    M[i, j] = Σ_{T⊆N∖i} c_j(T) φ_i(x_{T∪i}) (c: Shapley or Banzhaf weights of the (d−1)-player game), estimated
    from one stream of coalitions (docs/estimators.md). Total model cost ≈ calls × rows per call of the inner method
    (e.g. IG ``n_steps``).

    Args:
        model: the model adapter (players, masking).
        method: the inner attribution method.
        options: run options; ``budget`` (≥ d + 1; serial: d + 2) is required.
        checkpoint_for: builds the run's checkpoint (or None).
        batch_size: units per batch (default: adapted to d and the budget).

    Returns:
        :class:`Estimate` with ``matrix``, ``first_order`` (φ(x)), ``stderr`` (0: exact; ``inf``: not identified by
        the calls made), ``n_evaluations``, ``params`` (estimator, n_evaluations, n_new_evaluations, batches,
        stopped_early, enumerated sizes, unidentified_entries, stderr_note, ...) and, with ``options.order == 3``,
        ``extras["tensor"]`` (T[i, j, k], ``[d, d, d]``, i the target; Σ_k T[i, j, k] = matrix[i, j]) and
        ``extras["tensor_stderr"]``.
    """
    d = int(model.n_players)
    variant, value, budget = options.variant, options.value, options.budget
    if budget is None:
        raise MetagameError("a sampled run needs budget=<number of attribution calls> (or budget='auto' with tol)")
    check_sampled(model, options)
    auto = options.auto_budget
    if auto:
        budget = auto_max_budget(d, variant)
    plan_budget = min(budget, AUTO_PLAN_CALLS_PER_PLAYER * d) if auto else budget
    minimum = minimum_budget(d, variant)
    if budget < minimum:
        what = "the full coalition and the d singletons" + ("" if variant == "metagame" else " and the empty coalition")
        raise MetagameError(
            f"budget={budget} is too small for d={d} players: at least {minimum} attribution calls are needed "
            f"({what}); pass budget >= {minimum}"
        )
    name = resolve_estimator(options.estimator, d, value, budget)
    if options.order == 3 and (variant != "metagame" or value != "shapley"):
        raise MetagameError("order=3 is defined for the metagame variant with the Shapley value; drop variant/value")
    if options.order == 3 and not ESTIMATORS[name].supports_tensor:
        raise MetagameError(
            f"order=3 with a budget is estimated by the stratified estimator (Shapley value, d <= "
            f"{STRATIFIED_MAX_PLAYERS}); estimator={name!r} cannot: pass estimator='stratified' or drop budget"
        )
    seed_used = int(np.random.SeedSequence().generate_state(1)[0]) if options.seed is None else options.seed
    cls = ESTIMATORS[name]
    plan_calls = max(plan_budget, minimum)
    plan = make_plan(d, plan_calls, variant, value, share_power=cls.share_power(d, plan_calls))
    rng = np.random.default_rng(np.random.SeedSequence([seed_used, d, 0x6D657461]))
    if batch_size is None:
        batch_size = min(4096, int(np.clip(plan_budget // 40, 32, max(32, 2**20 // max(d, 1)))))
    checkpoint = checkpoint_for("estimate") if checkpoint_for is not None else None
    game = make_attribution_game(model, method, options, cache=d <= DEDUPLICATE_MAX_PLAYERS or checkpoint is not None)
    stored = checkpoint.load() if checkpoint is not None else None
    if stored is not None:
        from ...players.coalitions import unpack_keys

        game.cache.put(unpack_keys(stored["rows"], d), stored["phi"].reshape(-1, d))
    ev = Evaluator(game, budget, d)
    acc = cls(plan)
    bar = progress_bar(budget, f"meta-attributions ({name})", options.progress, unit="call")
    last_save = time.monotonic()
    batches = n_units = 0
    stopped_early = False
    units_per_target = np.zeros(d)  # sampled units whose coalitions feed each target's game
    off = ~np.eye(d, dtype=bool) if variant == "metagame" else np.ones((d, d), dtype=bool)
    tol = options.tol
    show = not getattr(bar, "disable", True)
    next_check, next_show = 0, time.monotonic()  # calls before the next tol check; time of the next progress refresh

    def final_stderr(stderr: np.ndarray) -> np.ndarray:
        """The standard errors as the result reports them (Student-t factor for the units reaching each target)."""
        if plan.sampled and not cls.calibrated:
            # few units: scale so that ±1.96·stderr is the Student-t 95% interval with (units − 1) degrees of freedom
            dof = np.maximum(units_per_target - 1.0, 1.0)
            stderr = stderr * np.where(off, t_factors(dof)[:, None], 1.0)
        return stderr

    def worst_now(u_empty: np.ndarray, u_full: np.ndarray) -> tuple[float, bool]:
        """(largest finite stderr of the estimated entries, whether any is inf) of the estimate so far."""
        return worst_stderr(final_stderr(acc.result(u_empty, u_full)[1]), off)

    def save(force: bool = False) -> None:
        nonlocal last_save
        if checkpoint is not None and (force or time.monotonic() - last_save >= checkpoint.every):
            packed, phi = game.cache.packed_items()
            checkpoint.save(rows=packed, phi=phi)
            last_save = time.monotonic()

    def evaluate(rows: np.ndarray) -> np.ndarray:
        before = ev.used
        out = ev(rows)
        bar.update(ev.used - before)
        return out

    try:
        # mandatory and enumerated sizes (exact strata)
        base_rows = [np.ones((1, d), bool), np.eye(d, dtype=bool)]
        if variant == "serial":
            base_rows.insert(0, np.zeros((1, d), bool))
        base = np.concatenate(base_rows)
        base_phi = evaluate(base)
        full_phi = base_phi[-1 - d] if variant == "metagame" else base_phi[1]
        single_phi = base_phi[-d:]
        u_empty = single_phi[np.arange(d), np.arange(d)].copy() if variant == "metagame" else base_phi[0].copy()
        u_full = full_phi.copy()
        if auto and tol is None:
            tol = AUTO_RELATIVE_TOL * float(np.abs(u_full if variant == "metagame" else u_full - u_empty).max())
        acc.add_exact(Rows(plan, base, base_phi, None))
        for a in plan.enumerated:
            if a in plan.mandatory:
                continue
            for rows in sizes_rows(d, a, 4096):
                acc.add_exact(Rows(plan, rows, evaluate(rows), None))
                save()
        # sampled units, in batches
        max_units = 8 * budget
        while plan.sampled and ev.remaining > 0 and n_units < max_units:
            acc.before_batch(u_empty, u_full)
            rows, unit = draw_units(rng, plan, batch_size)
            cost = ev.cost(rows)
            last = cost[-1] > ev.remaining
            if last:
                # keep whole units whose rows fit into the remaining budget
                fits = cost <= ev.remaining
                unit_ok = np.ones(batch_size, dtype=bool)
                np.logical_and.at(unit_ok, unit, fits)
                n_keep = int(np.argmin(unit_ok)) if not unit_ok.all() else batch_size
                keep = unit < n_keep
                rows, unit = rows[keep], unit[keep]
                batch_units = n_keep
            else:
                batch_units = batch_size
            if batch_units == 0:
                break
            phi = evaluate(rows)
            units_per_target += rows.sum(axis=0) if variant == "metagame" else batch_units
            acc.add_units(Rows(plan, rows, phi, plan.log_q[rows.sum(axis=1)]), unit, batch_units)
            n_units += batch_units
            batches += 1
            save()
            if last:
                break
            checking = tol is not None and ev.used >= next_check
            if checking or (show and time.monotonic() >= next_show):
                started = time.monotonic()
                worst, any_inf = worst_now(u_empty, u_full)
                spent = time.monotonic() - started
                next_show = time.monotonic() + max(PROGRESS_STDERR_SECONDS, 10.0 * spent)
                bar.set_postfix_str(f"worst stderr {'inf' if any_inf else f'{worst:.3g}'}"
                                    + ("" if tol is None else f" (tol {tol:.3g})"))
                if checking:
                    if not any_inf and worst <= tol:
                        stopped_early = True
                        break
                    ratio = np.inf if any_inf or tol <= 0 else (worst / tol) ** 2
                    next_check = int(np.ceil(ev.used * float(np.clip(ratio, TOL_CHECK_GROWTH, 2.0))))
    finally:
        bar.close()
        save(force=True)

    matrix, stderr = acc.result(u_empty, u_full)
    if variant == "metagame":
        idx = np.arange(d)
        matrix[idx, idx] = u_empty
        stderr[idx, idx] = 0.0
    stderr = final_stderr(stderr)
    if value == "shapley":
        # efficiency holds by construction; remove what rounding left (evenly over the estimated entries)
        gap = matrix.sum(axis=1) - (u_full if variant == "metagame" else u_full - u_empty)
        matrix -= np.where(off, (gap / off.sum(axis=1))[:, None], 0.0)
    unidentified = int(np.isinf(stderr[off]).sum())
    extras: dict[str, np.ndarray] = {}
    if options.order == 3:
        extras["tensor"], extras["tensor_stderr"] = acc.tensor(u_empty, u_full, matrix, stderr)
    if variant == "serial":
        extras["attribution_at_baseline"] = u_empty.copy()
    params: dict[str, Any] = {
        "estimator": name,
        "estimator_requested": options.estimator,
        "n_evaluations": int(ev.used),
        "n_new_evaluations": int(game.n_evaluations),
        "resumed_evaluations": int(ev.used - game.n_evaluations),
        "batches": batches,
        "batch_size": batch_size,
        "units": n_units,
        "stopped_early": stopped_early,
        "seed_used": seed_used,
        "enumerated_sizes": [int(a) for a in plan.enumerated],
        "sampled_sizes": [int(a) for a in plan.sampled],
        "unidentified_entries": unidentified,
        "auto_budget": auto,
        "max_budget": int(budget),
    }
    worst, any_inf = worst_stderr(stderr, off)
    params["worst_stderr"] = worst if np.isfinite(worst) else None  # largest finite stderr of the estimated entries
    if tol is not None:
        reached = bool(not any_inf and worst <= tol)
        params.update(tol_requested=options.tol, tol_target=float(tol), tol_reached=reached)
        if not reached:
            limit = f"the cap of {int(budget)} calls (budget='auto': {AUTO_MAX_CALLS_PER_PLAYER}·d)" if auto else \
                f"budget={int(budget)}"
            worst_text = ("some entries are not identified (stderr = inf)" if any_inf
                          else f"the worst standard error is {worst:.3g}")
            params["tol_note"] = (
                f"tol={float(tol):.3g} was not reached within {limit}: {worst_text} after {int(ev.used)} calls; "
                "raise the budget or the tol"
            )
            warnings.warn(params["tol_note"], RuntimeWarning, stacklevel=2)
    if unidentified:
        params["stderr_note"] = (
            f"{unidentified} of {int(off.sum())} estimated entries are not identified by the {int(ev.used)} calls "
            "(too few sampled coalitions reach them): their stderr is inf and their value rests on the estimator's "
            "model or on the row's efficiency gap shared out (the even split φ_i/… when nothing was sampled), not on "
            "evidence; raise the budget"
        )
        warnings.warn(params["stderr_note"], RuntimeWarning, stacklevel=2)
    return Estimate(matrix, u_full.copy(), stderr, int(ev.used), params, extras)


def check_sampled(model: ModelAdapter, options: RunOptions) -> None:
    """Refuse, before any work, a sampled run (a budget, ``"auto"`` or ``tol``) of an adapter whose attributions
    are vector-valued (computed exactly only)."""
    if options.exact or not (model.attribution_shape or model.side_targets):
        return
    asked = "budget='auto' (or tol)" if options.auto_budget else f"budget={options.budget}"
    raise MetagameError(
        f"{type(model).__name__} has vector-valued attributions, which are computed exactly only, so {asked} cannot "
        f"apply; drop budget and tol (at most {model.exact_max_players} players)"
    )


def auto_max_budget(d: int, variant: str) -> int:
    """The cap of ``budget="auto"``: ``AUTO_MAX_CALLS_PER_PLAYER``·d calls, at most the coalitions there are (2^d − 1;
    2^d for the serial variant), at least the minimum budget."""
    coalitions = 2**d - (1 if variant == "metagame" else 0) if d < 62 else 2**62
    return int(max(min(AUTO_MAX_CALLS_PER_PLAYER * d, coalitions), minimum_budget(d, variant)))


def minimum_budget(d: int, variant: str) -> int:
    """The calls every sampled run pays first: the full coalition and the d singletons (serial: and ∅)."""
    return d + 1 if variant == "metagame" else d + 2


def worst_stderr(stderr: np.ndarray, off: np.ndarray) -> tuple[float, bool]:
    """(largest finite standard error among the estimated entries ``off``, whether any of them is inf)."""
    se = stderr[off]
    finite = np.isfinite(se)
    return (float(se[finite].max()) if finite.any() else float("inf")), bool((~finite).any())


__all__ = ["ESTIMATORS", "auto_max_budget", "check_sampled", "estimate_meta_attributions", "minimum_budget",
           "resolve_estimator", "worst_stderr"]
