"""The driver of every sampled run: pays the mandatory coalitions, enumerates affordable sizes, draws units in
batches until the budget (or ``tol``) is reached, checkpoints, and finishes the estimate (exact diagonal,
Student-t scaling, exact row sums). Estimators are looked up by name; the driver never checks their type: it asks
their class attributes (:class:`~.base.Estimator`: ``share_power``, ``calibrated``, ``supports_tensor``)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ...errors import MetagameError
from ...games.masked import AttributionGame
from ...methods.base import AttributionMethod
from ...models.base import ModelAdapter
from ...players.coalitions import unpack_keys
from ...results.extras import ATTRIBUTION_AT_BASELINE
from ..backend import make_attribution_game
from ..checkpoint import Checkpoint
from ..options import AUTO_MAX_CALLS_PER_PLAYER, AUTO_RELATIVE_TOL, RunOptions
from ..outcome import Outcome
from ..progress import progress_bar
from ..third_order import check_order
from .base import Estimator, Rows, t_factors
from .evaluator import DEDUPLICATE_MAX_PLAYERS, Evaluator
from .montecarlo import MonteCarlo
from .plan import Plan, draw_units, make_plan, sizes_rows
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
) -> Outcome:
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
        :class:`~metagame.run.Outcome` with ``matrix``, ``first_order`` (φ(x)), ``stderr`` (0: exact; ``inf``: not
        identified by the calls made), ``n_evaluations``, ``params`` (estimator, n_evaluations, n_new_evaluations,
        batches, stopped_early, enumerated sizes, unidentified_entries, stderr_note, ...) and, with
        ``options.order == 3``, ``tensor`` (T[i, j, k], ``[d, d, d]``, i the target; Σ_k T[i, j, k] =
        matrix[i, j]) and ``tensor_stderr``.
    """
    setup = validate(model, options)
    run = _Sampling(model, method, options, setup, checkpoint_for, batch_size)
    try:
        run.pay_exact()
        run.sample()
    finally:
        run.close()
    out = run.finish()
    for note in ("tol_note", "stderr_note"):
        if note in out.params:
            warnings.warn(out.params[note], RuntimeWarning, stacklevel=2)
    return out


@dataclass(frozen=True)
class Setup:
    """A validated sampled run: ``d`` players, at most ``budget`` calls, a plan made for ``plan_calls`` calls
    (``budget="auto"``: fewer than its cap) and the estimator class."""

    d: int
    budget: int
    plan_calls: int
    estimator: type[Estimator]
    auto: bool


def validate(model: ModelAdapter, options: RunOptions) -> Setup:
    """Refuse, before any work, a sampled run that cannot be done: no budget, vector-valued attributions, fewer
    calls than the mandatory d + 1 (serial: d + 2), an estimator that cannot compute the value or the order."""
    d = int(model.n_players)
    variant = options.variant
    if options.budget is None:
        raise MetagameError("a sampled run needs budget=<number of attribution calls> (or budget='auto' with tol)")
    check_sampled(model, options)
    auto = options.auto_budget
    budget = auto_max_budget(d, variant) if auto else options.budget
    minimum = minimum_budget(d, variant)
    if budget < minimum:
        what = "the full coalition and the d singletons" + ("" if variant == "metagame" else " and the empty coalition")
        raise MetagameError(
            f"budget={budget} is too small for d={d} players: at least {minimum} attribution calls are needed "
            f"({what}); pass budget >= {minimum}"
        )
    name = resolve_estimator(options.estimator, d, options.value, budget)
    check_order(options)
    if options.order == 3 and not ESTIMATORS[name].supports_tensor:
        able = [n for n, cls in ESTIMATORS.items() if cls.supports_tensor]
        raise MetagameError(
            f"order=3 with a budget is estimated by the {' or '.join(able)} estimator (Shapley value, d <= "
            f"{STRATIFIED_MAX_PLAYERS}); estimator={name!r} cannot: pass "
            f"{' or '.join(f'estimator={n!r}' for n in able)} or drop budget"
        )
    plan_calls = max(min(budget, AUTO_PLAN_CALLS_PER_PLAYER * d) if auto else budget, minimum)
    return Setup(d, int(budget), plan_calls, ESTIMATORS[name], auto)


def plan_run(setup: Setup, options: RunOptions, batch_size: int | None) -> tuple[Plan, np.random.Generator, int, int]:
    """``(plan, rng, batch_size, seed_used)``: the sizes to enumerate and the draw distribution (the estimator's
    ``share_power``), the sampler seeded by (seed, d), and units per batch (default ≈ plan_calls/40 in [32, 4096])."""
    d, calls = setup.d, setup.plan_calls
    seed_used = int(np.random.SeedSequence().generate_state(1)[0]) if options.seed is None else options.seed
    plan = make_plan(d, calls, options.variant, options.value, share_power=setup.estimator.share_power(d, calls))
    rng = np.random.default_rng(np.random.SeedSequence([seed_used, d, 0x6D657461]))
    if batch_size is None:
        batch_size = min(4096, int(np.clip(calls // 40, 32, max(32, 2**20 // max(d, 1)))))
    return plan, rng, batch_size, seed_used


def restore(
    model: ModelAdapter, method: AttributionMethod, options: RunOptions, d: int, checkpoint: Checkpoint | None
) -> AttributionGame:
    """The run's game S ↦ φ(f, x_S), its cache filled with the coalitions a checkpoint of the same run holds."""
    game = make_attribution_game(model, method, options, cache=d <= DEDUPLICATE_MAX_PLAYERS or checkpoint is not None)
    stored = checkpoint.load() if checkpoint is not None else None
    if stored is not None:
        game.cache.put(unpack_keys(stored["rows"], d), stored["phi"].reshape(-1, d))
    return game


class _Sampling:
    """One sampled run's state: the game and its budget, the estimator, the progress bar, the checkpoint, and the
    exact endpoints u_i(∅), u_i(N) of every target game (:meth:`pay_exact` → :meth:`sample` → :meth:`finish`)."""

    def __init__(self, model, method, options: RunOptions, setup: Setup, checkpoint_for, batch_size: int | None):
        self.options, self.setup = options, setup
        d = setup.d
        self.plan, self.rng, self.batch_size, self.seed_used = plan_run(setup, options, batch_size)
        self.checkpoint = checkpoint_for("estimate") if checkpoint_for is not None else None
        self.game = restore(model, method, options, d, self.checkpoint)
        self.ev = Evaluator(self.game, setup.budget, d)
        self.acc = setup.estimator(self.plan)
        self.bar = progress_bar(setup.budget, f"meta-attributions ({setup.estimator.name})", options.progress,
                                unit="call")
        self.last_save = time.monotonic()
        self.batches = self.n_units = 0
        self.stopped_early = False
        self.units_per_target = np.zeros(d)  # sampled units whose coalitions feed each target's game
        self.off = ~np.eye(d, dtype=bool) if options.variant == "metagame" else np.ones((d, d), dtype=bool)
        self.tol = options.tol
        self.u_empty = self.u_full = np.zeros(d)

    def evaluate(self, rows: np.ndarray) -> np.ndarray:
        """φ(x_S) of ``rows`` within the budget, counted on the progress bar."""
        before = self.ev.used
        out = self.ev(rows)
        self.bar.update(self.ev.used - before)
        return out

    def save(self, force: bool = False) -> None:
        """Checkpoint every evaluated coalition (at most every ``checkpoint.every`` seconds unless ``force``)."""
        ck = self.checkpoint
        if ck is not None and (force or time.monotonic() - self.last_save >= ck.every):
            packed, phi = self.game.cache.packed_items()
            ck.save(rows=packed, phi=phi)
            self.last_save = time.monotonic()

    def close(self) -> None:
        """Close the progress bar and save the checkpoint (also when the run fails or is interrupted)."""
        self.bar.close()
        self.save(force=True)

    def pay_exact(self) -> None:
        """The mandatory coalitions (N, the singletons; serial: ∅) and every enumerated size (exact strata)."""
        d, plan, variant = self.setup.d, self.plan, self.options.variant
        base_rows = [np.ones((1, d), bool), np.eye(d, dtype=bool)]
        if variant == "serial":
            base_rows.insert(0, np.zeros((1, d), bool))
        base = np.concatenate(base_rows)
        base_phi = self.evaluate(base)
        full_phi = base_phi[-1 - d] if variant == "metagame" else base_phi[1]
        single_phi = base_phi[-d:]
        self.u_empty = single_phi[np.arange(d), np.arange(d)].copy() if variant == "metagame" else base_phi[0].copy()
        self.u_full = full_phi.copy()
        if self.setup.auto and self.tol is None:
            total = self.u_full if variant == "metagame" else self.u_full - self.u_empty
            self.tol = AUTO_RELATIVE_TOL * float(np.abs(total).max())
        self.acc.add_exact(Rows(plan, base, base_phi, None))
        for a in plan.enumerated:
            if a in plan.mandatory:
                continue
            for rows in sizes_rows(d, a, 4096):
                self.acc.add_exact(Rows(plan, rows, self.evaluate(rows), None))
                self.save()

    def draw(self) -> tuple[np.ndarray, np.ndarray, int, bool]:
        """``(rows, unit, units, last)``: the next batch of units, cut to the whole units that fit the remaining
        budget when it does not fit whole (``last``)."""
        ev, batch_size = self.ev, self.batch_size
        rows, unit = draw_units(self.rng, self.plan, batch_size)
        cost = ev.cost(rows)
        if cost[-1] <= ev.remaining:
            return rows, unit, batch_size, False
        fits = cost <= ev.remaining
        unit_ok = np.ones(batch_size, dtype=bool)
        np.logical_and.at(unit_ok, unit, fits)
        n_keep = int(np.argmin(unit_ok)) if not unit_ok.all() else batch_size
        keep = unit < n_keep
        return rows[keep], unit[keep], n_keep, True

    def sample(self) -> None:
        """Batches of sampled units until the budget is spent or every estimated stderr is at most ``tol``."""
        plan, ev, variant = self.plan, self.ev, self.options.variant
        show = not getattr(self.bar, "disable", True)
        next_check, next_show = 0, time.monotonic()  # calls before the next tol check; next progress refresh
        max_units = 8 * self.setup.budget
        while plan.sampled and ev.remaining > 0 and self.n_units < max_units:
            self.acc.before_batch(self.u_empty, self.u_full)
            rows, unit, batch_units, last = self.draw()
            if batch_units == 0:
                break
            phi = self.evaluate(rows)
            self.units_per_target += rows.sum(axis=0) if variant == "metagame" else batch_units
            self.acc.add_units(Rows(plan, rows, phi, plan.log_q[rows.sum(axis=1)]), unit, batch_units)
            self.n_units += batch_units
            self.batches += 1
            self.save()
            if last:
                break
            tol = self.tol
            checking = tol is not None and ev.used >= next_check
            if checking or (show and time.monotonic() >= next_show):
                started = time.monotonic()
                worst, any_inf = worst_stderr(self.reported(self.acc.result(self.u_empty, self.u_full)[1]), self.off)
                spent = time.monotonic() - started
                next_show = time.monotonic() + max(PROGRESS_STDERR_SECONDS, 10.0 * spent)
                self.bar.set_postfix_str(f"worst stderr {'inf' if any_inf else f'{worst:.3g}'}"
                                         + ("" if tol is None else f" (tol {tol:.3g})"))
                if checking:
                    if not any_inf and worst <= tol:
                        self.stopped_early = True
                        break
                    ratio = np.inf if any_inf or tol <= 0 else (worst / tol) ** 2
                    next_check = int(np.ceil(ev.used * float(np.clip(ratio, TOL_CHECK_GROWTH, 2.0))))

    def reported(self, stderr: np.ndarray) -> np.ndarray:
        """The standard errors as the result reports them: an estimator that is not ``calibrated`` gets the
        Student-t factor t_{0.975}(units − 1)/z_{0.975} for the sampled units reaching each target."""
        if self.plan.sampled and not self.setup.estimator.calibrated:
            dof = np.maximum(self.units_per_target - 1.0, 1.0)
            stderr = stderr * np.where(self.off, t_factors(dof)[:, None], 1.0)
        return stderr

    def finish(self) -> Outcome:
        """The final estimate: exact diagonal (metagame: M[i, i] = u_i(∅)), reported stderr, exact row sums
        (Shapley: Σ_j M[i, j] = φ_i(x), the rounding gap spread evenly), the tensor (order 3) and the metadata."""
        d, variant, off = self.setup.d, self.options.variant, self.off
        u_empty, u_full = self.u_empty, self.u_full
        matrix, stderr = self.acc.result(u_empty, u_full)
        if variant == "metagame":
            idx = np.arange(d)
            matrix[idx, idx] = u_empty
            stderr[idx, idx] = 0.0
        stderr = self.reported(stderr)
        if self.options.value == "shapley":
            # efficiency holds by construction; remove what rounding left (evenly over the estimated entries)
            gap = matrix.sum(axis=1) - (u_full if variant == "metagame" else u_full - u_empty)
            matrix -= np.where(off, (gap / off.sum(axis=1))[:, None], 0.0)
        tensor = tensor_se = None
        if self.options.order == 3:
            tensor, tensor_se = self.acc.tensor(u_empty, u_full, matrix, stderr)
        extras = {ATTRIBUTION_AT_BASELINE: u_empty.copy()} if variant == "serial" else {}
        return Outcome(matrix, u_full.copy(), int(self.ev.used), stderr, self.params(stderr), extras, tensor, tensor_se)

    def params(self, stderr: np.ndarray) -> dict[str, Any]:
        """``metadata["parameters"]`` of the estimate, with ``tol_note`` / ``stderr_note`` when tol was not reached
        or entries are not identified (the driver warns with them)."""
        options, setup, ev, off, tol = self.options, self.setup, self.ev, self.off, self.tol
        unidentified = int(np.isinf(stderr[off]).sum())
        params: dict[str, Any] = {
            "estimator": setup.estimator.name,
            "estimator_requested": options.estimator,
            "n_evaluations": int(ev.used),
            "n_new_evaluations": int(self.game.n_evaluations),
            "resumed_evaluations": int(ev.used - self.game.n_evaluations),
            "batches": self.batches,
            "batch_size": self.batch_size,
            "units": self.n_units,
            "stopped_early": self.stopped_early,
            "seed_used": self.seed_used,
            "enumerated_sizes": [int(a) for a in self.plan.enumerated],
            "sampled_sizes": [int(a) for a in self.plan.sampled],
            "unidentified_entries": unidentified,
            "auto_budget": setup.auto,
            "max_budget": setup.budget,
        }
        worst, any_inf = worst_stderr(stderr, off)
        params["worst_stderr"] = worst if np.isfinite(worst) else None  # largest finite stderr of the estimated entries
        if tol is not None:
            reached = bool(not any_inf and worst <= tol)
            params.update(tol_requested=options.tol, tol_target=float(tol), tol_reached=reached)
            if not reached:
                limit = (f"the cap of {setup.budget} calls (budget='auto': {AUTO_MAX_CALLS_PER_PLAYER}·d)" if setup.auto
                         else f"budget={setup.budget}")
                worst_text = ("some entries are not identified (stderr = inf)" if any_inf
                              else f"the worst standard error is {worst:.3g}")
                params["tol_note"] = (
                    f"tol={float(tol):.3g} was not reached within {limit}: {worst_text} after {int(ev.used)} calls; "
                    "raise the budget or the tol"
                )
        if unidentified:
            params["stderr_note"] = (
                f"{unidentified} of {int(off.sum())} estimated entries are not identified by the {int(ev.used)} calls "
                "(too few sampled coalitions reach them): their stderr is inf and their value rests on the estimator's "
                "model or on the row's efficiency gap shared out (the even split φ_i/… when nothing was sampled), not "
                "on evidence; raise the budget"
            )
        return params


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


__all__ = ["ESTIMATORS", "Setup", "auto_max_budget", "check_sampled", "estimate_meta_attributions", "minimum_budget",
           "plan_run", "resolve_estimator", "restore", "validate", "worst_stderr"]
