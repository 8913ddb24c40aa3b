"""Data adapters: players are training points.

A coalition S is the subset of training points a model is trained on; the model output is a
utility U(S) (a score or negative loss of the model trained on S, on a test point or test set):

* :class:`DataModel` trains on each subset (a scikit-learn estimator cloned and fitted, or a torch
  training function ``train(X_sub, y_sub, seed) -> model``) and caches the trained model and its
  utility by subset, so no subset is ever trained twice (``n_trainings`` counts fits);
* :class:`KNNDataModel` is the K-nearest-neighbour utility of Jia et al. (2019) in closed form,
  U(S) = mean over test points of (1/K) Σ_{k ≤ min(K, |S|)} 1[y_{α_k(S)} = y_test], vectorised over
  coalitions (no training at all).

Data games have no gradient path in the coalition (``differentiable = False``); the gradient
influence method (:mod:`metagame.domains.data.methods`) differentiates the trained torch model's
parameters instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence, get_args

import numpy as np
import torch

from ...errors import MetagameError, NotDifferentiableError
from ...models.base import ModelAdapter
from ...players.coalitions import EXACT_MAX_PLAYERS, CoalitionCache, as_coalitions, format_coalition, player_labels

UtilityName = Literal["accuracy", "neg_log_loss", "neg_mse"]
_UTILITIES: tuple[str, ...] = get_args(UtilityName)
_PROBA_FLOOR = 1e-12


@dataclass
class Checkpoints:
    """What a torch training function may return for TracIn: models saved during training and the
    learning rate in effect at each (``models[-1]`` is the final model whose utility is reported)."""

    models: list
    learning_rates: Sequence[float] | float = 1.0

    def pairs(self) -> list[tuple[Any, float]]:
        """``(model, learning_rate)`` for every checkpoint."""
        if not self.models:
            raise MetagameError("Checkpoints(models=[...]) needs at least one model")
        lrs = self.learning_rates
        if isinstance(lrs, (int, float)):
            lrs = [float(lrs)] * len(self.models)
        if len(lrs) != len(self.models):
            raise MetagameError(f"Checkpoints got {len(self.models)} models but {len(lrs)} learning rates; give one per model")
        return list(zip(self.models, [float(v) for v in lrs]))


@dataclass
class ConstantClassifier:
    """The model used for a single-class training subset: always predicts ``label``."""

    label: Any
    classes_: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def predict(self, X) -> np.ndarray:
        return np.full(len(X), self.label)

    def predict_proba(self, X) -> np.ndarray:
        p = (self.classes_ == self.label).astype(np.float64)
        return np.tile(p, (len(X), 1))


class EmptyModel:
    """Marker for the empty training set (its utility is ``empty_value``)."""

    def __repr__(self) -> str:
        return "EmptyModel()"


def _as_2d(X, name: str):
    if isinstance(X, torch.Tensor):
        return X.unsqueeze(0) if X.ndim == 1 else X
    arr = np.asarray(X)
    if arr.ndim == 0:
        raise MetagameError(f"{name} must be an array of examples; got a scalar")
    return arr.reshape(1, -1) if arr.ndim == 1 else arr


def _length(a) -> int:
    return int(a.shape[0]) if hasattr(a, "shape") else len(a)


@dataclass
class TorchTraining:
    """What gradient influence needs for one coalition S of training points: the checkpoints of the torch model
    trained on S with their learning rates (empty for S = ∅), the training examples of S and the differentiable
    utility ``utility(module) -> scalar tensor`` on the test data."""

    checkpoints: list[tuple[torch.nn.Module, float]]
    X: Any
    y: Any
    utility: Callable[[torch.nn.Module], torch.Tensor]


class _DataAdapter(ModelAdapter):
    """Shared part of data adapters: training set, test set, players ``z0 .. z{n-1}``."""

    differentiable = False
    #: exact data games train up to 2^d models: 16 points by default (KNN is closed form, up to the engine's limit)
    exact_max_players = 16

    def __init__(self, X, y, X_test, y_test, players: Sequence[str] | None, batch_size: int):
        super().__init__(batch_size=batch_size, cache_values=True)
        self.X = _as_2d(X, "X")
        self.y = y if isinstance(y, torch.Tensor) else np.asarray(y)
        if _length(self.y) != _length(self.X):
            raise MetagameError(f"X has {_length(self.X)} training points but y has {_length(self.y)} labels; give one label per point")
        if X_test is None or y_test is None:
            raise MetagameError("a data game needs a test point or test set: pass X_test=... and y_test=...")
        self.X_test = _as_2d(X_test, "X_test")
        yt = y_test if isinstance(y_test, torch.Tensor) else np.asarray(y_test)
        self.y_test = yt.reshape(-1) if not isinstance(yt, torch.Tensor) else yt.reshape(-1)
        if _length(self.y_test) != _length(self.X_test):
            raise MetagameError(f"X_test has {_length(self.X_test)} points but y_test has {_length(self.y_test)} labels")
        self.n_players = _length(self.X)
        if self.n_players < 1:
            raise MetagameError("the training set is empty; a data game needs at least one training point")
        self.players = player_labels(players, self.n_players, prefix="z", of="training points")
        self.player_kinds = ["data"] * self.n_players

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def embed(self, coalitions: np.ndarray):
        c = torch.as_tensor(np.asarray(coalitions, dtype=bool), dtype=torch.float64)
        return c, torch.zeros_like(c), None

    def forward(self, z, extra=None, row_coalitions=None):
        raise NotDifferentiableError(
            f"{type(self).__name__} trains a model per subset of training points, which has no gradient in the "
            f"coalition; use occlusion (leave-one-out), shapley (Data Shapley), banzhaf, knn_shapley or "
            f"gradient_influence (parameter gradients of a torch model)"
        )

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        return coordinate_scores

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:  # pragma: no cover - subclasses
        raise NotImplementedError

    def knn_tables(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """KNN-Shapley's tables on this training set (computed once and kept on the adapter); ``k`` is required."""
        if k is None:
            raise MetagameError("knn_shapley on a DataModel needs the number of neighbours: method_kwargs={'k': 5}")
        if getattr(self, "_knn", None) is None:
            self._knn = knn_order(self.X, self.y, self.X_test, self.y_test)
        order, match = self._knn
        return order, match, int(k)

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"X": self.X, "y": self.y, "X_test": self.X_test, "y_test": self.y_test, "k": getattr(self, "k", None)}


class KNNDataModel(_DataAdapter):
    """Closed-form K-nearest-neighbour utility (Jia et al., 2019) as a data game.

    U(S) = (1/|test|) Σ_t (1/K) Σ_{k=1}^{min(K,|S|)} 1[y_{α_k^t(S)} = y_t], with α_k^t(S) the k-th
    nearest member of S to test point t (Euclidean distance, ties broken by index); U(∅) = 0.

    Args:
        X, y: training points and labels (class labels).
        X_test, y_test: a test point or a test set.
        k: number of neighbours K.
        players: labels of the training points.
    """

    #: closed form (no training): the engine's exact limit applies
    exact_max_players = EXACT_MAX_PLAYERS

    def __init__(self, X, y, *, X_test, y_test, k: int = 5, players: Sequence[str] | None = None, batch_size: int = 1024):
        super().__init__(X, y, X_test, y_test, players, batch_size)
        if int(k) < 1:
            raise MetagameError(f"k must be >= 1; got {k}")
        self.k = int(k)
        order, match = knn_order(self.X, self.y, self.X_test, self.y_test)
        self.order = order  # [t, n]: training points by distance to each test point
        self.match = match  # [t, n]: label match in that order
        self.n_trainings = 0

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        self.count(len(coalitions))
        members = np.asarray(coalitions, dtype=bool)[:, self.order]  # [m, t, n] in distance order
        rank = np.cumsum(members, axis=2)
        top = members & (rank <= self.k)
        v = (top * self.match[None]).sum(axis=2) / self.k
        return torch.as_tensor(v.mean(axis=1), dtype=torch.float64)

    def explained(self) -> dict[str, str]:
        """f = the K-nearest-neighbour utility of the training subset on the test points."""
        return {"f": f"K-nearest-neighbour utility (k = {self.k}): mean over the {len(self.y_test)} test points of the "
                     f"share of the k nearest training points in S with the test label",
                "masking": "an absent training point is left out of the training set",
                "empty": "no training points (utility 0)"}

    def describe(self) -> dict:
        return {"adapter": "KNNDataModel", "k": self.k, "n_train": self.n_players, "n_test": int(len(self.y_test))}

    def knn_tables(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        if k is not None and k != self.k:
            raise MetagameError(f"knn_shapley got k={k} but the KNNDataModel uses k={self.k}; drop k or use the same K")
        return self.order, self.match, self.k


def knn_order(X, y, X_test, y_test) -> tuple[np.ndarray, np.ndarray]:
    """Training points sorted by Euclidean distance to each test point (stable) and the label matches.

    Returns ``order[t, n]`` and ``match[t, n] = 1[y[order[t, p]] == y_test[t]]`` (float).
    """
    Xn = np.asarray(X.detach().cpu() if isinstance(X, torch.Tensor) else X, dtype=np.float64).reshape(_length(X), -1)
    Tn = np.asarray(X_test.detach().cpu() if isinstance(X_test, torch.Tensor) else X_test, dtype=np.float64).reshape(_length(X_test), -1)
    if Xn.shape[1] != Tn.shape[1]:
        raise MetagameError(f"training points have {Xn.shape[1]} features but test points have {Tn.shape[1]}")
    yn = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y).reshape(-1)
    ytn = np.asarray(y_test.detach().cpu() if isinstance(y_test, torch.Tensor) else y_test).reshape(-1)
    dist = ((Tn[:, None, :] - Xn[None, :, :]) ** 2).sum(axis=2)
    order = np.argsort(dist, axis=1, kind="stable")
    match = (yn[order] == ytn[:, None]).astype(np.float64)
    return order, match


class DataModel(_DataAdapter):
    """Train-on-subset data game: U(S) = utility of the model trained on the training points in S.

    Args:
        X, y: training set (numpy arrays, or tensors for a torch training function).
        train: a scikit-learn estimator (cloned and fitted on each subset; ``random_state`` set to
            ``seed`` when it has one) or a function ``train(X_sub, y_sub, seed) -> model`` (a torch
            module, or :class:`Checkpoints` for TracIn).
        X_test, y_test: a test point or test set.
        utility: ``"accuracy"``, ``"neg_log_loss"``, ``"neg_mse"`` or ``utility(model, X_test, y_test) -> float``.
        seed: the fixed training seed (the same for every subset, so U is a function of S).
        empty_value: utility of the empty training set (default 0.0). A classifier subset with one
            class gets a :class:`ConstantClassifier` predicting that class (scored by the utility).
        players: labels of the training points.
    """

    def __init__(
        self,
        X,
        y,
        *,
        train: Any,
        X_test,
        y_test,
        utility: UtilityName | Callable = "accuracy",
        seed: int = 0,
        empty_value: float = 0.0,
        players: Sequence[str] | None = None,
        batch_size: int = 64,
    ):
        super().__init__(X, y, X_test, y_test, players, batch_size)
        self.seed = int(seed)
        self.empty_value = float(empty_value)
        if hasattr(train, "fit") and hasattr(train, "get_params"):
            from sklearn.base import is_classifier

            self.backend = "sklearn"
            self.is_classifier = bool(is_classifier(train))
        elif callable(train):
            self.backend = "torch"
            self.is_classifier = False
        else:
            raise MetagameError(
                f"train must be a scikit-learn estimator or a function train(X_sub, y_sub, seed) -> model; got {type(train).__name__}"
            )
        self.train = train
        if isinstance(utility, str) and utility not in _UTILITIES:
            raise MetagameError(f"unknown utility {utility!r}; use one of {', '.join(_UTILITIES)} or a callable utility(model, X_test, y_test)")
        if not isinstance(utility, str) and not callable(utility):
            raise MetagameError("utility must be a name or a callable utility(model, X_test, y_test) -> float")
        self.utility = utility
        self.classes = np.unique(np.asarray(self.y.detach().cpu() if isinstance(self.y, torch.Tensor) else self.y))
        self.n_trainings = 0
        self._models = CoalitionCache()

    # ------------------------------------------------------------------ training
    def subset(self, coalition: np.ndarray):
        """``(X_S, y_S)`` of one coalition."""
        idx = np.flatnonzero(np.asarray(coalition, dtype=bool))
        if isinstance(self.X, torch.Tensor):
            t = torch.as_tensor(idx, dtype=torch.long, device=self.X.device)
            Xs = self.X[t]
        else:
            Xs = self.X[idx]
        if isinstance(self.y, torch.Tensor):
            ys = self.y[torch.as_tensor(idx, dtype=torch.long, device=self.y.device)]
        else:
            ys = self.y[idx]
        return Xs, ys

    def trained(self, coalition) -> Any:
        """The model trained on coalition S (trained once, then cached)."""
        return self._models.get_or_compute(as_coalitions(coalition, self.n_players)[0], self._fit)

    def _fit(self, row: np.ndarray) -> Any:
        if not row.any():
            return EmptyModel()
        Xs, ys = self.subset(row)
        if self.backend == "sklearn" and self.is_classifier:
            present = np.unique(np.asarray(ys))
            if len(present) < 2:
                return ConstantClassifier(present[0], self.classes)
        try:
            if self.backend == "sklearn":
                from sklearn.base import clone

                est = clone(self.train)
                if "random_state" in est.get_params() and est.get_params()["random_state"] is None:
                    est.set_params(random_state=self.seed)
                model = est.fit(Xs, ys)
            else:
                model = self.train(Xs, ys, self.seed)
                if model is None:
                    raise MetagameError("the training function returned None; it must return the trained model")
        except Exception as exc:
            raise MetagameError(
                f"training on the subset S = {format_coalition(row, self.players)} ({int(row.sum())} points) failed with "
                f"{type(exc).__name__}: {exc}. Make the training function handle every subset (e.g. few points or "
                f"one class), or choose a different estimator"
            ) from exc
        self.n_trainings += 1
        return model

    # ------------------------------------------------------------------ utility
    def final_model(self, model: Any) -> Any:
        """The model whose utility is reported (the last checkpoint for :class:`Checkpoints`)."""
        return model.models[-1] if isinstance(model, Checkpoints) else model

    def score(self, model: Any) -> float:
        """Utility of one trained model on the test data."""
        if isinstance(model, EmptyModel):
            return self.empty_value
        model = self.final_model(model)
        if callable(self.utility) and not isinstance(self.utility, str):
            out = self.utility(model, self.X_test, self.y_test)
            return float(out.detach()) if isinstance(out, torch.Tensor) else float(out)
        if isinstance(model, torch.nn.Module):
            with torch.no_grad():
                return float(self.torch_utility(model))
        return _sklearn_utility(self.utility, model, self.X_test, self.y_test)

    def torch_utility(self, module: torch.nn.Module) -> torch.Tensor:
        """Differentiable utility of a torch model on the test data (a scalar tensor)."""
        if callable(self.utility) and not isinstance(self.utility, str):
            out = self.utility(module, self.X_test, self.y_test)
            if not isinstance(out, torch.Tensor):
                raise MetagameError("the utility returned a number, not a tensor; gradient methods need a torch utility")
            return out.reshape(())
        X = torch.as_tensor(self.X_test) if not isinstance(self.X_test, torch.Tensor) else self.X_test
        param = next(module.parameters(), None)
        if param is not None and X.is_floating_point():
            X = X.to(param.dtype)
        out = module(X)
        y = self.y_test if isinstance(self.y_test, torch.Tensor) else torch.as_tensor(self.y_test)
        return torch_utility(self.utility, out, y)

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        self.count(len(coalitions))
        vals = [self.score(self.trained(row)) for row in np.asarray(coalitions, dtype=bool)]
        return torch.as_tensor(vals, dtype=torch.float64)

    def training_runs(self, coalition: np.ndarray) -> TorchTraining:
        """The torch model trained on S (its checkpoints), the examples of S and the differentiable utility."""
        if self.backend != "torch":
            raise MetagameError(
                f"gradient_influence needs a DataModel with a torch training function train(X_sub, y_sub, seed) -> "
                f"torch module; this one trains {type(self.train).__name__} (scikit-learn). Use occlusion, shapley or "
                f"knn_shapley"
            )
        if self.utility == "accuracy":
            raise MetagameError("gradient_influence needs a differentiable utility; use utility='neg_log_loss' or 'neg_mse'")
        trained = self.trained(coalition)
        Xs, ys = self.subset(coalition)
        if isinstance(trained, EmptyModel):
            pairs: list[tuple[Any, float]] = []
        else:
            pairs = trained.pairs() if isinstance(trained, Checkpoints) else [(trained, 1.0)]
        return TorchTraining(pairs, Xs, ys, self.torch_utility)

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            **super().fingerprint_parts(), "train": self.train, "utility": self.utility, "seed": self.seed,
            "empty_value": self.empty_value,
        }

    def explained(self) -> dict[str, str]:
        """f = the utility of the model trained on the subset."""
        name = type(self.train).__name__ if self.backend == "sklearn" else getattr(self.train, "__name__", "train")
        utility = self.utility if isinstance(self.utility, str) else getattr(self.utility, "__name__", "callable")
        return {"f": f"{utility} on the {int(_length(self.y_test))} test points of {name} trained on the training "
                     f"points in S (seed {self.seed})",
                "masking": "an absent training point is left out of the training set",
                "empty": f"no training points (utility {self.empty_value:.4g})"}

    def describe(self) -> dict:
        name = type(self.train).__name__ if self.backend == "sklearn" else getattr(self.train, "__name__", "train")
        return {
            "adapter": "DataModel",
            "backend": self.backend,
            "train": name,
            "utility": self.utility if isinstance(self.utility, str) else getattr(self.utility, "__name__", "callable"),
            "n_train": self.n_players,
            "n_test": int(_length(self.y_test)),
            "seed": self.seed,
            "n_trainings": self.n_trainings,
        }


def _sklearn_utility(name: str, model: Any, X_test, y_test) -> float:
    y = np.asarray(y_test)
    if name == "accuracy":
        return float(np.mean(np.asarray(model.predict(X_test)) == y))
    if name == "neg_mse":
        pred = np.asarray(model.predict(X_test), dtype=np.float64).reshape(-1)
        return float(-np.mean((pred - y.astype(np.float64)) ** 2))
    if not hasattr(model, "predict_proba"):
        raise MetagameError(f"utility 'neg_log_loss' needs predict_proba, which {type(model).__name__} lacks; use 'accuracy'")
    proba = np.asarray(model.predict_proba(X_test), dtype=np.float64)
    classes = list(np.asarray(model.classes_))
    p = np.full(len(y), _PROBA_FLOOR)
    for r, label in enumerate(y):
        if label in classes:
            p[r] = max(proba[r, classes.index(label)], _PROBA_FLOOR)
    return float(np.mean(np.log(p)))


def torch_utility(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Named utility of raw torch outputs ``out`` against targets ``y`` (differentiable except accuracy)."""
    classify = out.ndim == 2 and out.shape[1] > 1
    if name == "accuracy":
        pred = out.argmax(dim=1) if classify else (out.reshape(-1) > 0).long()
        return (pred == y.reshape(-1).long()).double().mean()
    if name == "neg_log_loss":
        if classify:
            return -torch.nn.functional.cross_entropy(out, y.reshape(-1).long())
        return -torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(-1), y.reshape(-1).to(out.dtype))
    if name == "neg_mse":
        return -torch.mean((out.reshape(-1) - y.reshape(-1).to(out.dtype)) ** 2)
    raise MetagameError(f"unknown utility {name!r}; use one of {', '.join(_UTILITIES)}")
