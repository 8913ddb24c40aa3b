"""The diffusion adapter: a diffusers MM-DiT at fixed denoising inputs, players = concepts or prompt words,
vector-valued attributions (one ConceptAttention map per player)."""

from __future__ import annotations

from typing import Any, Sequence, get_args

import numpy as np
import torch

from ...errors import MetagameError, one_of
from ...models.base import ModelAdapter
from ...models.state import keeps_models
from ...players.coalitions import as_coalitions, require_unique
from ...players.image import region_weights
from ...results.extras import CONCEPT_MAPS, FIRST_ORDER_MAPS, IMAGE, MAPS, META_MAPS, REGION
from .inputs import (
    CHUNK_FLOATS,
    PlayerMode,
    Route,
    StepInputs,
    check_blocks,
    joint_blocks,
    patch_grid,
    resolve_route,
    run_transformer,
    transformer_family,
)
from .masking import masked_text_forward
from .streams import ConceptStreams, masked_softmax


# ------------------------------------------------------------------------------------------------ the adapter
class DiffusionConceptModel(ModelAdapter):
    """A diffusers MM-DiT transformer at fixed denoising inputs; players = concepts or prompt words.

    The inner attribution is vector-valued (``attribution_shape = (P,)``): :meth:`maps` returns φ(x_S) ``[m, d, P]``
    (one map over the P image patches per player; 0 for absent players), read by the ``concept_attention`` method.
    The scalar summary of a map is its mean over the patches (or over ``region``): :meth:`summary_weights`. There
    is no scalar f: :meth:`values` raises; f(x) and f(∅) in reports are the summed map summaries.

    Args:
        transformer: ``FluxTransformer2DModel`` or ``SD3Transformer2DModel``.
        steps: the transformer inputs at the denoising steps whose maps are averaged (see :func:`generate`).
        players: player labels (concepts, or prompt words).
        mode: ``"concepts"`` (concept streams) or ``"words"`` (prompt words masked in the joint attention).
        concept_embeds: ``[d, joint_attention_dim]`` concept embeddings (concept mode), before the context embedder.
        word_tokens: per word, its token positions in ``encoder_hidden_states`` (word mode).
        blocks: joint blocks whose maps are averaged (default: the last 4).
        route: ``"decoupled"``, ``"coupled"`` or ``"auto"`` (decoupled exactly when concept self-attention is off).
        concept_self_attention: whether concepts attend to each other (default True, except for route="decoupled").
        softmax: softmax over the present players per patch (ConceptAttention); False keeps the raw scores.
        rows_per_chunk: coalitions per chunk of the concept streams / per masked forward (default: by memory).
        image: the generated image ``[H, W, 3]`` (for reports), if any.
        region: optional mask on the patch grid or the image: the result's ``matrix`` is the region mean of the maps.
    """

    exact_max_players: int = 12
    differentiable = False

    @keeps_models
    def __init__(
        self,
        transformer: Any,
        steps: Sequence[StepInputs],
        players: Sequence[str],
        *,
        mode: PlayerMode = "concepts",
        concept_embeds: torch.Tensor | None = None,
        word_tokens: Sequence[Sequence[int]] | None = None,
        blocks: Sequence[int] | None = None,
        route: Route = "auto",
        concept_self_attention: bool | None = None,
        softmax: bool = True,
        rows_per_chunk: int | None = None,
        image: np.ndarray | None = None,
        prompt: str | None = None,
        name: str | None = None,
        region: Any = None,
    ) -> None:
        super().__init__(batch_size=rows_per_chunk or 64, cache_values=False)
        self.model = transformer
        self.family = transformer_family(transformer)
        self.steps = list(steps)
        if not self.steps:
            raise MetagameError("no denoising steps to read; pass at least one timestep")
        self.players = require_unique(players, "the concepts")
        self.n_players = len(self.players)
        if self.n_players < 1:
            raise MetagameError("need at least one player (a concept or a prompt word)")
        if mode not in get_args(PlayerMode):
            raise MetagameError(f"unknown players mode {mode!r}; use {one_of(PlayerMode)}")
        self.mode = mode
        self.player_kinds = ["concept" if mode == "concepts" else "word"] * self.n_players
        self.blocks = check_blocks(transformer, blocks)
        self.route, self.concept_self_attention = resolve_route(route, concept_self_attention)
        self.softmax = bool(softmax)
        self.rows_per_chunk = rows_per_chunk
        self.image = image
        self.prompt = prompt
        self.name = name
        first = self.steps[0].kwargs
        self.grid = patch_grid(self.family, first, transformer)
        self.n_patches = self.grid[0] * self.grid[1]
        self.attribution_shape = (self.n_patches,)
        self.region = None if region is None else region_weights(region, self.grid)
        self.n_text = int(first["encoder_hidden_states"].shape[1])
        self.concept_embeds = None
        self.word_tokens = None
        if mode == "concepts":
            if concept_embeds is None:
                raise MetagameError("concept mode needs concept_embeds [d, joint_attention_dim] (or a pipeline to encode the concepts)")
            ce = torch.as_tensor(concept_embeds)
            jd = int(transformer.config.joint_attention_dim)
            if ce.ndim != 2 or ce.shape != (self.n_players, jd):
                raise MetagameError(f"concept_embeds must have shape ({self.n_players}, {jd}); got {tuple(ce.shape)}")
            self.concept_embeds = ce.detach()
        else:
            if word_tokens is None or len(word_tokens) != self.n_players:
                raise MetagameError("word mode needs word_tokens: one list of text-token positions per word")
            owner = np.full(self.n_text, -1, dtype=np.int64)
            for w, toks in enumerate(word_tokens):
                toks = [int(t) for t in toks]
                if not toks:
                    raise MetagameError(f"word {self.players[w]!r} has no tokens in the text sequence")
                for t in toks:
                    if not 0 <= t < self.n_text:
                        raise MetagameError(f"word {self.players[w]!r}: token {t} outside the {self.n_text} text tokens")
                    if owner[t] >= 0:
                        raise MetagameError(f"text token {t} belongs to two words")
                    owner[t] = w
            self.word_tokens = [list(map(int, t)) for t in word_tokens]
            self.token_owner = owner
        self._raw: torch.Tensor | None = None
        self.n_forward_rows = 0
        self.n_stream_rows = 0

    # -------------------------------------------------------------- protocol
    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        raise MetagameError("the diffusion adapter has no scalar output; its attribution is the concept map "
                            "(use maps(coalitions), or metagame.explain_diffusion)")

    def summary_weights(self) -> np.ndarray:
        """Weights ``[P]`` of the scalar summary of a map: the mean over the patches, or over ``region``."""
        w = np.ones(self.n_patches) if self.region is None else self.region
        return w / w.sum()

    def probe_values(self, coalitions: np.ndarray) -> np.ndarray:
        """Numbers that change when the model does (checkpoint fingerprints): the summed map summaries."""
        return (self.maps(coalitions).numpy() @ self.summary_weights()).sum(axis=1)

    def endpoint_values(self, full=None, empty=None) -> dict[str, float]:
        """f(x) and f(∅) for reports: the summed map summaries with every player / no player present."""
        d = self.n_players
        v = self.probe_values(np.stack([np.ones(d, dtype=bool), np.zeros(d, dtype=bool)]))
        return {"value_full": float(v[0]), "value_empty": float(v[1])}

    @property
    def device(self) -> torch.device:
        return self.steps[0].kwargs["hidden_states"].device

    # -------------------------------------------------------------- maps
    def maps(self, coalitions) -> torch.Tensor:
        """φ(x_S) for each row of ``coalitions`` ``bool[m, d]``: ``[m, d, P]`` (float64, 0 for absent players)."""
        coalitions = as_coalitions(coalitions, self.n_players)
        if self.mode == "words":
            out = self._word_maps(coalitions)
        elif self.route == "decoupled":
            out = self._decoupled_maps(coalitions)
        else:
            out = self._coupled_maps(coalitions)
        return out.double().cpu()

    def raw_scores(self) -> torch.Tensor:
        """Decoupled concept–patch scores ⟨o_c, o_p⟩ ``[n_steps, n_blocks, d, P]`` (one partial forward per step)."""
        if self.mode != "concepts":
            raise MetagameError("raw concept scores exist for concept players only")
        if self._raw is None:
            d = self.n_players
            out = torch.zeros(len(self.steps), len(self.blocks), d, self.n_patches)
            pos = {b: i for i, b in enumerate(self.blocks)}
            for s, st in enumerate(self.steps):
                def keep(b, start, scores, s=s):
                    out[s, pos[b]] = scores[0].detach().float().cpu()

                streams = ConceptStreams(self.model, self.concept_embeds, np.ones((1, d), dtype=bool), self_attention=False,
                                         read=self.blocks, on_scores=keep, rows_per_chunk=self.rows_per_chunk)
                with streams:
                    run_transformer(self.model, st.kwargs)
                self.count(1)
                self.n_stream_rows += 1
            self._raw = out
        return self._raw

    def _decoupled_maps(self, coalitions: np.ndarray) -> torch.Tensor:
        raw = self.raw_scores()  # [T, B, d, P]
        t, b, d, p = raw.shape
        flat = raw.reshape(t * b, d, p)
        present = torch.as_tensor(coalitions)
        out = torch.zeros(len(coalitions), d, p, dtype=torch.float64)
        chunk = max(1, CHUNK_FLOATS // max(1, t * b * d * p))
        for start in range(0, len(coalitions), chunk):
            rows = present[start : start + chunk]
            n = rows.shape[0]
            s = flat[None].expand(n, t * b, d, p).reshape(n * t * b, d, p)
            pr = rows[:, None, :].expand(n, t * b, d).reshape(n * t * b, d)
            m = masked_softmax(s, pr, self.softmax).view(n, t * b, d, p).double().mean(dim=1)
            out[start : start + n] = m
        return out

    def _coupled_maps(self, coalitions: np.ndarray) -> torch.Tensor:
        m, d = coalitions.shape
        acc = torch.zeros(m, d, self.n_patches, dtype=torch.float64)
        present = torch.as_tensor(coalitions)

        def add(b, start, scores):
            n = scores.shape[0]
            rows = present[start : start + n].to(scores.device)
            acc[start : start + n] += masked_softmax(scores, rows, self.softmax).double().cpu()

        for st in self.steps:
            with ConceptStreams(self.model, self.concept_embeds, coalitions, self_attention=self.concept_self_attention,
                                read=self.blocks, on_scores=add, rows_per_chunk=self.rows_per_chunk):
                run_transformer(self.model, st.kwargs)
            self.count(1)
            self.n_stream_rows += m
        return acc / (len(self.steps) * len(self.blocks))

    def word_average(self) -> torch.Tensor:
        """``[W, T]`` averaging matrix: row w puts 1/|tokens(w)| on each token of word w."""
        a = torch.zeros(self.n_players, self.n_text)
        for w, toks in enumerate(self.word_tokens or []):
            a[w, toks] = 1.0 / len(toks)
        return a

    def keep_text(self, coalitions: np.ndarray) -> torch.Tensor:
        """``bool[m, T]``: text tokens kept at each coalition (tokens of no word are always kept)."""
        owner = torch.as_tensor(self.token_owner)
        present = torch.as_tensor(np.asarray(coalitions, dtype=bool))
        keep = torch.ones(present.shape[0], self.n_text, dtype=torch.bool)
        words = owner >= 0
        keep[:, words] = present[:, owner[words]]
        return keep

    def _word_maps(self, coalitions: np.ndarray) -> torch.Tensor:
        m, d = coalitions.shape
        acc = torch.zeros(m, d, self.n_patches, dtype=torch.float64)
        avg = self.word_average()
        keep_all = self.keep_text(coalitions)
        present = torch.as_tensor(coalitions)
        chunk = self.rows_per_chunk or max(1, min(64, CHUNK_FLOATS // max(1, (self.n_text + self.n_patches) ** 2)))
        for st in self.steps:
            for start in range(0, m, chunk):
                stop = min(m, start + chunk)

                def add(b, img, txt, start=start, stop=stop):
                    ow = torch.einsum("wt,nti->nwi", avg.to(txt.device), txt.float())
                    scores = torch.einsum("nwi,npi->nwp", ow, img.float())
                    rows = present[start:stop].to(scores.device)
                    acc[start:stop] += masked_softmax(scores, rows, self.softmax).double().cpu()

                masked_text_forward(self.model, st.kwargs, keep_all[start:stop], read=self.blocks, on_outputs=add,
                                    stop_after_read=True)
                self.count(stop - start)
        return acc / (len(self.steps) * len(self.blocks))

    # -------------------------------------------------------------- reports
    def display_context(self) -> dict:
        ctx: dict[str, Any] = {"grid": [int(self.grid[0]), int(self.grid[1])], "players_mode": self.mode}
        if self.prompt is not None:
            ctx["prompt"] = self.prompt
        if self.mode == "concepts":
            ctx["concepts"] = list(self.players)
        else:
            ctx["words"] = list(self.players)
        if self.name:
            ctx["model"] = self.name
        return ctx

    def describe(self) -> dict:
        cfg = self.model.config
        return {
            "adapter": type(self).__name__,
            "name": self.name,
            "family": self.family,
            "class": type(self.model).__name__,
            "joint_blocks": len(joint_blocks(self.model)),
            "num_attention_heads": int(cfg.num_attention_heads),
            "attention_head_dim": int(cfg.attention_head_dim),
            "dtype": str(self.model.dtype),
            **self.settings(),
        }

    def explained(self) -> dict[str, str]:
        """f = each player's ConceptAttention map; the scalar summary is its mean over the patches or region."""
        where = "over the region" if self.region is not None else "over the image patches"
        absent = ("an absent concept's stream is left out of the joint attention" if self.mode == "concepts"
                  else "an absent prompt word is masked out of the joint attention")
        return {"f": f"ConceptAttention map of each player (the scalar summary: its mean {where}), at timesteps "
                     f"{[int(s.step) for s in self.steps]}",
                "masking": absent, "empty": "no concepts / words present"}

    def settings(self) -> dict:
        """The settings that define the game (recorded in result metadata)."""
        return {
            "players": self.mode,
            "route": self.route if self.mode == "concepts" else "masked_forward",
            "concept_self_attention": self.concept_self_attention if self.mode == "concepts" else None,
            "softmax": self.softmax,
            "blocks": list(self.blocks),
            "timesteps": [int(s.step) for s in self.steps],
        }

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "model": self.model, "steps": [(st.step, st.kwargs) for st in self.steps], "players": self.players,
            "concept_embeds": self.concept_embeds, "word_tokens": self.word_tokens, "settings": self.settings(),
            "region": self.region,
        }

    def finalize(self, result: Any) -> None:
        """Reshape the engine's maps onto the patch grid (``concept_maps`` ``[d, rows, cols]``, ``meta_maps``
        ``[d, d, rows, cols]``), add the generated image, the region and the map settings."""
        rows, cols = self.grid
        d = self.n_players
        maps = result.extras.pop(MAPS)
        result.extras[META_MAPS] = maps.reshape(d, d, rows, cols)
        result.extras[CONCEPT_MAPS] = result.extras.pop(FIRST_ORDER_MAPS).reshape(d, rows, cols)
        if self.region is not None:
            result.extras[REGION] = self.region.reshape(rows, cols)
        if self.image is not None:
            result.extras[IMAGE] = np.asarray(self.image, dtype=np.float64)
        settings = self.settings()
        result.context.update(route=settings["route"], timesteps=settings["timesteps"], blocks=settings["blocks"],
                              concept_rows=int(self.n_stream_rows),
                              summary="region mean" if self.region is not None else "mean over all patches")
