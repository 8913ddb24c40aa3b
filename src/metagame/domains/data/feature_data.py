"""Features of a test input and training points as players of one game.

A coalition S = S_F ∪ S_D holds features (of the explained test input) and training points. The model is trained on
the training points in S_D, and the test input is shown with the features outside S_F at their baseline:

    f(S) = U(model trained on S_D, x_test with x_k = b_k for k ∉ S_F),

so M[feature i, training point j] = how training point j moves the attribution of feature i, and M[training point j,
feature i] = how feature i moves the value of training point j. Two routes:

* **KNN in closed form** (``train=None``): U = the K-nearest-neighbour likelihood of the test label (Jia et al., 2019,
  the utility of :class:`~metagame.domains.data.adapter.KNNDataModel`), U(S) = (1/K) Σ_{k ≤ min(K, |S_D|)} 1[y_{α_k} = y_test]
  with α_k the k-th nearest member of S_D to the masked test input; no training, vectorised over coalitions (each
  distinct feature mask sorts the training set once).
* **train on subsets** (a scikit-learn estimator, or ``train(X_sub, y_sub, seed) -> model`` with a callable utility):
  each distinct training subset is fitted once (cached) and scores every feature mask of the batch in one call.

With several test inputs U is their mean. No gradient path: use perturbation methods (shapley, banzhaf, occlusion).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence, get_args

import numpy as np
import torch

from ...errors import MetagameError, NotDifferentiableError
from ...models.base import ModelAdapter
from ...players.coalitions import EXACT_MAX_PLAYERS, CoalitionCache, player_labels, require_unique
from .adapter import _PROBA_FLOOR, DataModel, EmptyModel, UtilityName, _as_2d, knn_order

FeatureUtility = Literal["proba", UtilityName]
_FEATURE_UTILITIES: tuple[str, ...] = get_args(FeatureUtility)


def _numpy(a: Any) -> np.ndarray:
    return np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)


class FeatureDataModel(ModelAdapter):
    """Players: the features of the test input(s), then the training points (module docstring).

    Args:
        X, y: training points ``[n, p]`` and labels.
        X_test, y_test: the explained test input (or a few; U is their mean) and its label(s).
        train: None for the closed-form KNN likelihood, a scikit-learn estimator, or ``train(X_sub, y_sub, seed)``.
        k: neighbours K of the KNN route.
        utility: ``"proba"`` (probability of the test label; the default for classifiers), ``"accuracy"``,
            ``"neg_log_loss"``, ``"neg_mse"`` (the default for regressors) or ``utility(model, X_masked, y_test)``.
        baseline: the value of an absent feature ``[p]`` (default: the training mean).
        feature_names, players: labels of the features and of the training points.
        seed: training seed (the same for every subset). empty_value: U of the empty training set.
    """

    differentiable = False
    #: the KNN route is closed form; training on subsets fits up to 2^|D| models
    exact_max_players = EXACT_MAX_PLAYERS

    def __init__(
        self,
        X,
        y,
        *,
        X_test,
        y_test,
        train: Any = None,
        k: int = 5,
        utility: FeatureUtility | Callable | None = None,
        baseline: Sequence[float] | np.ndarray | None = None,
        feature_names: Sequence[str] | None = None,
        players: Sequence[str] | None = None,
        seed: int = 0,
        empty_value: float = 0.0,
        batch_size: int = 4096,
    ):
        super().__init__(batch_size=batch_size, cache_values=True)
        Xn = _numpy(_as_2d(X, "X")).astype(np.float64)
        if Xn.ndim != 2:
            raise MetagameError(f"X must be a table [n, features]; got shape {Xn.shape}")
        Tn = _numpy(_as_2d(X_test, "X_test")).astype(np.float64)
        if Tn.ndim != 2 or Tn.shape[1] != Xn.shape[1]:
            raise MetagameError(f"X_test must have {Xn.shape[1]} features like X; got shape {Tn.shape}")
        self.X, self.y = Xn, _numpy(y).reshape(-1)
        self.X_test, self.y_test = Tn, _numpy(y_test).reshape(-1)
        if len(self.y) != len(self.X):
            raise MetagameError(f"X has {len(self.X)} training points but y has {len(self.y)} labels")
        if len(self.y_test) != len(self.X_test):
            raise MetagameError(f"X_test has {len(self.X_test)} points but y_test has {len(self.y_test)} labels")
        self.n_features = int(Xn.shape[1])
        self.n_train = int(Xn.shape[0])
        if self.n_train < 1 or self.n_features < 1:
            raise MetagameError("a features × training points game needs at least one feature and one training point")
        self.baseline = Xn.mean(axis=0) if baseline is None else np.asarray(baseline, dtype=np.float64).reshape(-1)
        if self.baseline.shape != (self.n_features,):
            raise MetagameError(f"baseline must have one value per feature ({self.n_features}); got {self.baseline.shape}")
        fnames = player_labels(feature_names, self.n_features, prefix="x", what="feature names", of="features")
        dnames = player_labels(players, self.n_train, prefix="z", what="training-point labels", of="training points")
        self.players = require_unique(list(fnames) + list(dnames), "feature_names and players")
        self.player_kinds = ["feature"] * self.n_features + ["data"] * self.n_train
        self.n_players = self.n_features + self.n_train
        self.empty_value = float(empty_value)
        self.seed = int(seed)
        self.train = train
        self.n_trainings = 0
        if train is None:
            if int(k) < 1:
                raise MetagameError(f"k must be >= 1; got {k}")
            if utility not in (None, "proba"):
                raise MetagameError("the closed-form KNN route scores the KNN likelihood of the test label "
                                    "(utility='proba'); pass train=... to use another utility")
            self.k = int(k)
            self.utility: Any = "proba"
            self._orders = CoalitionCache()
            self.data = None
        else:
            self.k = None
            data = DataModel(Xn, self.y, train=train, X_test=Tn, y_test=self.y_test, seed=seed, empty_value=empty_value)
            if utility is None:
                utility = "proba" if data.is_classifier else "neg_mse"
            if isinstance(utility, str) and utility not in _FEATURE_UTILITIES:
                raise MetagameError(f"unknown utility {utility!r}; use one of {', '.join(_FEATURE_UTILITIES)} or a "
                                    f"callable utility(model, X_masked, y_test)")
            if data.backend != "sklearn" and isinstance(utility, str):
                raise MetagameError("a torch training function needs a callable utility(model, X_masked, y_test) -> float")
            self.utility = utility
            self.data = data

    # ------------------------------------------------------------------ masking
    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def masked_test(self, feature_masks: np.ndarray) -> np.ndarray:
        """The test inputs with absent features at the baseline: ``[m, t, p]`` for masks ``bool[m, p]``."""
        keep = np.asarray(feature_masks, dtype=bool)[:, None, :]
        return np.where(keep, self.X_test[None], self.baseline[None, None, :])

    def _knn_tables(self, feature_mask: np.ndarray) -> np.ndarray:
        """``[2, t, n]``: the KNN order and the label matches of one feature mask (cached by the mask)."""

        def compute(rows: np.ndarray) -> np.ndarray:
            out = []
            for row in rows:
                order, match = knn_order(self.X, self.y, self.masked_test(row[None])[0], self.y_test)
                out.append(np.stack([order.astype(np.float64), match]).reshape(-1))
            return np.stack(out)

        flat = self._orders.fill(np.asarray(feature_mask, dtype=bool)[None], compute)[0]
        return flat.reshape(2, len(self.y_test), self.n_train)

    # ------------------------------------------------------------------ values
    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        coalitions = np.asarray(coalitions, dtype=bool)
        self.count(len(coalitions))
        feats, data = coalitions[:, : self.n_features], coalitions[:, self.n_features :]
        out = np.zeros(len(coalitions))
        if self.data is None:
            uniq, inv = np.unique(feats, axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            for u, fmask in enumerate(uniq):
                rows = np.flatnonzero(inv == u)
                tables = self._knn_tables(fmask)
                order, match = tables[0].astype(np.int64), tables[1]
                members = data[rows][:, order]  # [r, t, n] in distance order
                top = members & (np.cumsum(members, axis=2) <= self.k)
                out[rows] = ((top * match[None]).sum(axis=2) / self.k).mean(axis=1)
        else:
            uniq, inv = np.unique(data, axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            for u, dmask in enumerate(uniq):
                rows = np.flatnonzero(inv == u)
                model = self.data.trained(dmask)
                out[rows] = self._scores(model, self.masked_test(feats[rows]))
            self.n_trainings = self.data.n_trainings
        return torch.as_tensor(out, dtype=torch.float64)

    def _scores(self, model: Any, Xm: np.ndarray) -> np.ndarray:
        """U of one trained model at masked test inputs ``[r, t, p]`` -> ``[r]`` (one predict call for all rows)."""
        r, t, p = Xm.shape
        if isinstance(model, EmptyModel):
            return np.full(r, self.empty_value)
        model = self.data.final_model(model)
        if callable(self.utility):
            vals = []
            for row in Xm:
                v = self.utility(model, row, self.y_test)
                vals.append(float(v.detach()) if isinstance(v, torch.Tensor) else float(v))
            return np.asarray(vals)
        flat = Xm.reshape(r * t, p)
        y = np.tile(self.y_test, r)
        if self.utility == "neg_mse":
            pred = np.asarray(model.predict(flat), dtype=np.float64).reshape(-1)
            per = -((pred - y.astype(np.float64)) ** 2)
        elif self.utility == "accuracy":
            per = (np.asarray(model.predict(flat)) == y).astype(np.float64)
        else:
            if not hasattr(model, "predict_proba"):
                raise MetagameError(f"utility {self.utility!r} needs predict_proba, which {type(model).__name__} lacks; "
                                    f"use utility='accuracy' or 'neg_mse'")
            proba = np.asarray(model.predict_proba(flat), dtype=np.float64)
            classes = list(np.asarray(model.classes_))
            per = np.zeros(len(y))
            for label in np.unique(y):
                rows = y == label
                if label in classes:
                    per[rows] = proba[rows, classes.index(label)]
            if self.utility == "neg_log_loss":
                per = np.log(np.maximum(per, _PROBA_FLOOR))
        return per.reshape(r, t).mean(axis=1)

    # ------------------------------------------------------------------ no gradient path
    def embed(self, coalitions: np.ndarray):
        c = torch.as_tensor(np.asarray(coalitions, dtype=bool), dtype=torch.float64)
        return c, torch.zeros_like(c), None

    def forward(self, z, extra=None, row_coalitions=None):
        raise NotDifferentiableError(
            "a features × training points game trains a model per subset of training points, which has no gradient in "
            "the coalition; use shapley, banzhaf or occlusion"
        )

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        return coordinate_scores

    # ------------------------------------------------------------------ reporting
    def display_context(self) -> dict:
        return {"n_features": self.n_features, "n_train": self.n_train,
                "x_test": [float(v) for v in self.X_test[0]], "y_test": str(self.y_test[0])}

    def finalize(self, result: Any) -> None:
        from ...models.joint import cross_blocks

        result.extras.update(cross_blocks(result))
        result.metadata["n_trainings"] = int(self.n_trainings)

    def explained(self) -> dict[str, str]:
        """f = the utility of the model trained on the training points of S at the masked test input."""
        utility = self.utility if isinstance(self.utility, str) else getattr(self.utility, "__name__", "callable")
        how = f"K-nearest-neighbour (k = {self.k})" if self.data is None else "the model"
        return {"f": f"{utility} of {how} trained on the training points in S, at the test input with the features "
                     f"outside S at their baseline",
                "masking": "an absent feature takes its baseline value; an absent training point is left out of training",
                "empty": f"no features and no training points (utility {self.empty_value:.4g})"}

    def describe(self) -> dict:
        how = "knn" if self.data is None else type(self.train).__name__ if hasattr(self.train, "fit") else "train"
        return {"adapter": "FeatureDataModel", "route": how, "k": self.k, "n_features": self.n_features,
                "n_train": self.n_train, "n_test": int(len(self.y_test)),
                "utility": self.utility if isinstance(self.utility, str) else getattr(self.utility, "__name__", "callable")}

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"X": self.X, "y": self.y, "X_test": self.X_test, "y_test": self.y_test, "baseline": self.baseline,
                "k": self.k, "train": self.train, "utility": self.utility, "seed": self.seed,
                "empty_value": self.empty_value}


__all__ = ["FeatureDataModel", "FeatureUtility"]
