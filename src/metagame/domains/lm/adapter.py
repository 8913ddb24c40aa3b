"""Hugging Face causal language models: players are the words (or tokens) of the user prompt.

The explained output is the teacher-forced log-probability of a fixed answer,

    f(x) = Σ_k log p(a_k | template(x), a_<k)      (optionally − the same for an alternative answer),

where ``template(x)`` is the prompt inside the tokenizer's chat template. Template and special tokens
are never players and never masked. A coalition S keeps the words in S; the others are masked by

* ``"attention"`` (default): the word's tokens are dropped from the attention mask and the remaining
  tokens get the positions they would have if the word were deleted (rows are re-packed, padded on
  ``padding_side``) — f(x_S) is the log-probability given the prompt with the other words deleted.
  Gradient methods use the zero embedding as their baseline on player tokens.
* ``"mask_token"``: the word's tokens are replaced by a baseline token (``baseline_token``; default
  the tokenizer's mask, else pad, else unk token); gradient baseline = that token's embedding.
* ``"zero_embedding"``: the word's input embeddings are set to zero (gradient baseline = zero).

Gradient methods work on the input embeddings of the prompt part after the shared prefix
(``embed`` -> ``z`` of shape ``[m, T, H]``); a player's score is the sum over its tokens and
embedding dimensions. The template prefix before the first player is computed once and reused as a
key/value cache for every row (``prefix_cache=True``).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterator, Literal, Sequence, get_args

import numpy as np
import torch

from ...errors import MetagameError, one_of
from ...models.base import ModelAdapter
from ...models.state import keeps_models
from ...players.coalitions import as_coalitions
from ...players.text import Grouping, Word, group_words, token_player_map, unique_labels
from ..hf.loading import causal_lm_from, check_causal, check_device, context_length, load_causal_lm
from .prompt import PromptSetup

MaskingMode = Literal["attention", "mask_token", "zero_embedding"]
PaddingSide = Literal["left", "right"]
MASKING_MODES: tuple[str, ...] = get_args(MaskingMode)
#: the generated answer's default length limit: a label or a short answer, not a sentence (each token costs every row)
DEFAULT_MAX_ANSWER_TOKENS = 8

class CausalLM(PromptSetup, ModelAdapter):
    """A causal LM explained at one prompt; f = Σ_k log p(answer_k | prompt, answer_<k) [− alternative].

    When no kept token precedes the first word of the prompt (no chat template and no BOS token, e.g. GPT-2 style
    tokenizers), the tokenizer's BOS token (else its EOS token) is prepended as an always-present, never-masked
    context token, so f(x_∅) = log p(answer | context token) is defined and the same for every prompt; a tokenizer
    with neither is refused.

    Args:
        model: a Hugging Face name or local folder, or a loaded ``PreTrainedModel``.
        prompt: the user prompt (its words are the players).
        answer: the explained answer (text, or token ids to skip re-tokenization). None (default) generates it
            greedily once from the full prompt and fixes it: its first phrase — stopping before end-of-sequence and
            before a token that starts with ``. , ; : ! ?`` or a line break — and at most ``max_answer_tokens``
            tokens, so f scores a label or short answer ("Positive", "The review is positive") rather than a long
            sentence; :meth:`f_description` names the scored tokens.
        tokenizer: required with a loaded model (a fast tokenizer; offsets group subwords into words).
        alternative: optional contrast answer; then f = log p(answer) − log p(alternative).
        grouping: ``"words"`` (default) or ``"tokens"``.
        masking: ``"attention"`` (default), ``"mask_token"`` or ``"zero_embedding"`` (module docstring).
        baseline_token: the replacement token for ``"mask_token"`` (string or id; default mask, pad, unk).
        chat_template: wrap the prompt in the tokenizer's chat template (None: when it has one).
        system_prompt: optional system message for the template.
        max_answer_tokens: length limit of the generated answer (default 8; 1 scores only the first answer token).
            Every answer token is one more position in every coalition's forward pass.
        device, dtype: where and in which precision to run (``dtype`` also applies to a loaded model).
        trust_remote_code: passed to ``from_pretrained`` (False unless you trust the checkpoint's code).
        gguf_file: the GGUF file inside the model folder (a folder with exactly one ``.gguf`` file and no
            safetensors, or a ``.gguf`` path, needs none; :func:`~metagame.domains.hf.gguf.resolve_gguf`).
        batch_size: rows per forward pass.
        padding_side: where re-packed rows are padded in ``"attention"`` masking (results do not depend on it).
        prefix_cache: reuse the key/value cache of the template prefix before the first player.
    """

    #: the most words explained exactly by default (2^16 coalitions)
    exact_max_players = 16

    @keeps_models
    def __init__(
        self,
        model,
        prompt: str,
        answer: str | Sequence[int] | None = None,
        *,
        tokenizer=None,
        alternative: str | None = None,
        grouping: Grouping = "words",
        masking: MaskingMode = "attention",
        baseline_token: str | int | None = None,
        chat_template: bool | None = None,
        system_prompt: str | None = None,
        max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        trust_remote_code: bool = False,
        gguf_file: str | None = None,
        batch_size: int = 32,
        padding_side: PaddingSide = "left",
        prefix_cache: bool = True,
        cache_values: bool = True,
    ):
        super().__init__(batch_size=batch_size, cache_values=cache_values)
        if masking not in MASKING_MODES:
            raise MetagameError(f"unknown masking mode {masking!r}; use one of {', '.join(MASKING_MODES)}")
        if grouping not in get_args(Grouping):
            raise MetagameError(f"unknown grouping {grouping!r}; use {one_of(Grouping)}")
        if padding_side not in get_args(PaddingSide):
            raise MetagameError(f"unknown padding_side {padding_side!r}; use {one_of(PaddingSide)}")
        if not isinstance(prompt, str) or not prompt.strip():
            raise MetagameError("the prompt is empty; pass the text whose words should be explained (prompt='...')")
        if not isinstance(max_answer_tokens, (int, np.integer)) or max_answer_tokens < 1:
            raise MetagameError(f"max_answer_tokens must be an integer >= 1; got {max_answer_tokens!r}")
        check_device(device)

        model, tokenizer, self.model_name = causal_lm_from(model, tokenizer, device=device, dtype=dtype,
                                                          trust_remote_code=trust_remote_code, gguf_file=gguf_file,
                                                          load=load_causal_lm)  # looked up here at call time
        self.model = model  # in eval mode while metagame runs it, then left as given (models/state.py)
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.embedding = model.get_input_embeddings()
        self.vocab_size = int(self.embedding.weight.shape[0])
        check_causal(model, self.vocab_size, self.device)

        self.prompt = prompt
        self.masking = masking
        self.grouping = grouping
        self.padding_side = padding_side
        self.max_answer_tokens = int(max_answer_tokens)
        self.system_prompt = system_prompt
        self.limit = context_length(model.config)

        # ---- the templated prompt, its tokens and the players
        ids, offsets, text, span = self._encode_prompt(prompt, chat_template, system_prompt)
        self.chat_template_used = text != prompt or bool(chat_template)
        # a special token written in the text (template markers, BOS) is never a player; an <unk> standing
        # for ordinary characters of the prompt is
        special_ids = set(int(i) for i in getattr(tokenizer, "all_special_ids", []) or [])
        pieces = tokenizer.convert_ids_to_tokens(list(ids))
        special = [int(t) in special_ids and text[a:b] == piece for t, (a, b), piece in zip(ids, offsets, pieces)]
        first_word = group_words(text, offsets, grouping, special_mask=special, span=span)
        if first_word and first_word[0].tokens[0] == 0:
            # nothing kept precedes the first word: an always-present context token conditions the empty prompt
            ids = [self._context_token()] + list(ids)
            offsets = [(0, 0)] + list(offsets)
            special = [True] + list(special)
            self.context_token_id: int | None = int(ids[0])
        else:
            self.context_token_id = None
        words = group_words(text, offsets, grouping, special_mask=special, span=span)
        if not words:
            raise MetagameError(
                f"the prompt {prompt!r} has no words to explain (only special or whitespace tokens); pass a prompt with text"
            )
        self.template_text = text
        self.prompt_ids = list(int(t) for t in ids)
        self.words: list[Word] = words
        self.n_players = len(words)
        self.players = unique_labels(words)
        self.player_kinds = ["word" if grouping == "words" else "token"] * self.n_players
        self._check_length(len(self.prompt_ids) + (0 if answer is not None else self.max_answer_tokens), "the prompt")

        # ---- the answer (given, or generated once and fixed) and the optional alternative
        self.generated = answer is None
        if answer is None:
            self.answer_ids = self._generate()
        else:
            self.answer_ids = self._tokenize_answer(answer, "answer")
        self.answer = answer if isinstance(answer, str) else tokenizer.decode(self.answer_ids)
        self.alternative = alternative
        self.alternative_ids = None if alternative is None else self._tokenize_answer(alternative, "alternative")
        self._check_length(len(self.prompt_ids) + len(self.answer_ids), "the prompt plus the answer")
        if self.alternative_ids is not None:
            self._check_length(len(self.prompt_ids) + len(self.alternative_ids), "the prompt plus the alternative")

        # ---- layout: [prefix (never players) | z part: first player token .. end of prompt]
        tok_player = token_player_map(words, len(self.prompt_ids))
        self.prefix_len = int(np.flatnonzero(tok_player >= 0)[0])
        # the differentiable part starts at the last never-masked token before the first word, so a kept token
        # precedes the answer even when every word is masked (its logits predict the first answer token)
        self.z_start = self.prefix_len - 1
        self._tok_player = torch.as_tensor(tok_player[self.z_start :], device=self.device)
        self._is_player_tok = self._tok_player >= 0
        onehot = torch.zeros(len(self._tok_player), self.n_players, dtype=torch.float64, device=self.device)
        rows = torch.nonzero(self._is_player_tok).squeeze(1)
        onehot[rows, self._tok_player[rows]] = 1.0
        self._onehot = onehot
        with torch.no_grad():
            emb = self.embedding(torch.as_tensor([self.prompt_ids], device=self.device))[0].detach()
        self._prefix_emb = emb[: self.z_start]
        self._z_full = emb[self.z_start :]
        self.baseline_token_id = self._baseline_token(baseline_token) if masking == "mask_token" else None
        if masking == "mask_token":
            with torch.no_grad():
                fill = self.embedding(torch.as_tensor([self.baseline_token_id], device=self.device))[0].detach()
        else:
            fill = torch.zeros_like(self._z_full[0])
        self._zb_full = torch.where(self._is_player_tok[:, None], fill[None, :], self._z_full)
        self._answer_emb = self._embed_ids(self.answer_ids)
        self._alt_emb = None if self.alternative_ids is None else self._embed_ids(self.alternative_ids)
        self._answer_t = torch.as_tensor(self.answer_ids, device=self.device)
        self._alt_t = None if self.alternative_ids is None else torch.as_tensor(self.alternative_ids, device=self.device)
        params = inspect.signature(model.forward).parameters
        self._has_logits_to_keep = "logits_to_keep" in params
        # transformers >= 5.3 names the key/value cache argument ``cache`` (``past_key_values`` is deprecated)
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._prefix_kv = self._build_prefix_cache() if (prefix_cache and self.z_start > 0) else None

    # ------------------------------------------------------------------ setup helpers
    def _embed_ids(self, ids: Sequence[int]) -> torch.Tensor:
        with torch.no_grad():
            return self.embedding(torch.as_tensor([list(ids)], device=self.device))[0].detach()

    def _build_prefix_cache(self):
        try:
            from transformers import DynamicCache

            ids = torch.as_tensor([self.prompt_ids[: self.z_start]], device=self.device)
            with torch.no_grad():
                out = self.model(input_ids=ids, use_cache=True)
            cache = out["cache"] if "cache" in out else out["past_key_values"]  # transformers ≥ 5.x names it cache
            layers = [(layer[0].detach(), layer[1].detach()) for layer in cache]
            DynamicCache(ddp_cache_data=layers, config=self.model.config)  # the model's cache layout accepts it
            return layers
        except Exception:  # models with non-standard caches: run the prefix every time instead
            return None

    def _prefix_cache_for(self, n: int):
        from transformers import DynamicCache

        data = [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in self._prefix_kv]
        return DynamicCache(ddp_cache_data=data, config=self.model.config)

    # ------------------------------------------------------------------ adapter protocol
    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    @property
    def moves_positions(self) -> bool:
        """True when masking changes token positions (``"attention"`` re-packs the kept tokens)."""
        return self.masking == "attention"

    @contextlib.contextmanager
    def full_sequence(self) -> Iterator[None]:
        """Inside the block every row runs the whole token sequence, template prefix included, instead of reusing the
        prefix's cached keys and values: for hooks that change the model on every position (component gates in a
        joint game, :func:`metagame.joint`)."""
        saved = self._prefix_kv
        self._prefix_kv = None
        try:
            yield
        finally:
            self._prefix_kv = saved

    def sequence_ids(self, prompt: str | None = None) -> list[int]:
        """The full token ids the model reads for the answer: the templated prompt (with the context token when one
        is prepended) followed by the answer. With ``prompt`` another prompt is templated the same way (e.g. the
        corrupted prompt of activation patching)."""
        if prompt is None:
            return list(self.prompt_ids) + list(self.answer_ids)
        ids, _, _, _ = self._encode_prompt(prompt, self.chat_template_used, self.system_prompt)
        if self.context_token_id is not None:
            ids = [self.context_token_id] + list(ids)
        return [int(t) for t in ids] + list(self.answer_ids)

    def answer_log_prob(self, logits: torch.Tensor) -> torch.Tensor:
        """Σ_k log p(answer_k | ·) from the logits ``[n, L, V]`` of :meth:`sequence_ids` rows (teacher forcing) -> ``[n]``."""
        k = len(self.answer_ids)
        pred = logits[:, -(k + 1) : -1]
        if pred.dtype in (torch.float16, torch.bfloat16):
            pred = pred.float()
        logp = torch.log_softmax(pred, dim=-1)
        ids = self._answer_t.to(logp.device).view(1, k, 1).expand(logp.shape[0], -1, -1)
        return logp.gather(2, ids).squeeze(2).to(torch.float64).sum(dim=1)

    @property
    def n_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)

    def token_presence(self, coalitions: np.ndarray) -> torch.Tensor:
        """``bool[m, T]`` over the prompt part after the prefix: True where the token is kept in x_S."""
        coal = torch.as_tensor(np.asarray(coalitions, dtype=bool), device=self.device)
        idx = self._tok_player.clamp(min=0)
        present = coal[:, idx]
        return present | ~self._is_player_tok[None, :]

    def embed(self, coalitions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """z = input embeddings of x_S after the prefix ``[m, T, H]``, zb = baseline embeddings, extra = keep mask."""
        coalitions = as_coalitions(coalitions, self.n_players)
        m = coalitions.shape[0]
        present = self.token_presence(coalitions)
        zb = self._zb_full.unsqueeze(0).expand(m, -1, -1).clone()
        if self.masking == "attention":
            z = self._z_full.unsqueeze(0).expand(m, -1, -1).clone()
            return z, zb, (present,)
        z = torch.where(present[:, :, None], self._z_full[None], self._zb_full[None])
        return z, zb, None

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        """Sum scores ``[m, T, H]`` over each word's tokens and embedding dims -> ``[m, d]``."""
        per_token = coordinate_scores.detach().to(torch.float64).sum(dim=-1)
        return per_token @ self._onehot.to(per_token.device)

    def forward(self, z: torch.Tensor, extra: Any = None, row_coalitions: np.ndarray | None = None) -> torch.Tensor:
        """f at embeddings ``z`` ``[n, T, H]`` (keep mask in ``extra`` for attention masking) -> ``[n]``."""
        keep = None
        if extra is not None:
            keep = extra[0] if isinstance(extra, (tuple, list)) else extra
            keep = keep.to(device=z.device).bool()
        out = self._log_prob(z, keep, self._answer_emb, self._answer_t)
        if self._alt_emb is not None:
            out = out - self._log_prob(z, keep, self._alt_emb, self._alt_t)
        return self.check_output(out, z.shape[0], row_coalitions)

    # ------------------------------------------------------------------ the scoring pass
    def _log_prob(self, z: torch.Tensor, keep: torch.Tensor | None, ans_emb: torch.Tensor, ans_ids: torch.Tensor) -> torch.Tensor:
        """Σ_k log p(a_k | ...) for each row; rows re-packed (dropped tokens removed) under attention masking."""
        n, _, h = z.shape
        k = ans_ids.shape[0]
        x = torch.cat([z, ans_emb.to(z.dtype).unsqueeze(0).expand(n, -1, -1)], dim=1)
        past = None
        if self._prefix_kv is not None:
            past = self._prefix_cache_for(n)
            base = self.z_start
        elif self.z_start > 0:
            x = torch.cat([self._prefix_emb.to(z.dtype).unsqueeze(0).expand(n, -1, -1), x], dim=1)
            base = 0
        else:
            base = 0
        t = x.shape[1]
        mask = torch.ones(n, t, dtype=torch.bool, device=z.device)
        if keep is not None:
            mask[:, t - k - keep.shape[1] : t - k] = keep
        inv = None
        if not bool(mask.all()):
            # re-pack: kept tokens in order, padding on one side (stable sort keeps the order)
            key = (~mask).to(torch.int8) if self.padding_side == "right" else mask.to(torch.int8)
            order = torch.sort(key, dim=1, stable=True).indices
            x = x.gather(1, order[:, :, None].expand(-1, -1, h))
            mask = mask.gather(1, order)
            inv = torch.argsort(order, dim=1)
        positions = base + (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        attn = mask.long()
        if past is not None:
            attn = torch.cat([torch.ones(n, self.z_start, dtype=torch.long, device=z.device), attn], dim=1)
        kwargs: dict[str, Any] = {"inputs_embeds": x, "attention_mask": attn, "position_ids": positions}
        if past is not None:
            kwargs.update({self._cache_arg: past, "use_cache": True})
        else:
            kwargs["use_cache"] = False
        answer_at_end = inv is None or self.padding_side == "left"
        if answer_at_end and self._has_logits_to_keep:
            kwargs["logits_to_keep"] = k + 1
        self.count(n)
        logits = self.model(**kwargs).logits
        if answer_at_end:
            pred = logits[:, -(k + 1) : -1]
        else:
            where = inv[:, t - k : t] - 1  # the kept token just before each answer token
            pred = logits.gather(1, where[:, :, None].expand(-1, -1, logits.shape[-1]))
        if pred.dtype in (torch.float16, torch.bfloat16):
            pred = pred.float()  # log-softmax in at least float32
        logp = torch.log_softmax(pred, dim=-1)
        tok_lp = logp.gather(2, ans_ids.view(1, k, 1).expand(n, -1, -1)).squeeze(2)
        return tok_lp.to(torch.float64).sum(dim=1)

    # ------------------------------------------------------------------ reporting
    def value(self, coalition: Sequence[bool] | np.ndarray) -> float:
        """f(x_S) of one coalition."""
        return float(self.values(np.asarray(coalition, dtype=bool)[None, :])[0])

    def display_context(self) -> dict:
        """Display context: prompt, answer, model, masking, word spans."""
        return {
            "prompt": self.prompt,
            "answer": self.answer,
            "answer_generated": self.generated,
            "alternative": self.alternative,
            "model": self.model_name,
            "masking": self.masking,
            "grouping": self.grouping,
            "word_spans": [[w.start, w.end] for w in self.words],
            "template_text": self.template_text,
            "answer_tokens": self.tokenizer.convert_ids_to_tokens(self.answer_ids),
            "alternative_tokens": None if self.alternative_ids is None else self.tokenizer.convert_ids_to_tokens(self.alternative_ids),
        }

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "model": self.model, "prompt_ids": self.prompt_ids, "answer_ids": self.answer_ids,
            "alternative_ids": self.alternative_ids, "words": [w.tokens for w in self.words], "masking": self.masking,
            "baseline_token_id": self.baseline_token_id, "prefix_len": self.prefix_len,
        }

    def explained(self) -> dict[str, str]:
        """f with the exact answer (and alternative) tokens scored, the masking and the empty prompt."""
        f = self.f_description()
        unit = "word" if self.grouping == "words" else "token"
        masking = {
            "attention": f"an absent {unit} is deleted (its tokens leave the attention mask, later tokens move up); "
                         f"gradient methods start from zero embeddings on player tokens",
            "mask_token": f"an absent {unit}'s tokens are replaced by {self.tokenizer.decode([self.baseline_token_id])!r}"
                          if self.baseline_token_id is not None else f"an absent {unit}'s tokens are replaced",
            "zero_embedding": f"an absent {unit}'s input embeddings are set to zero",
        }[self.masking]
        return {"f": f, "masking": masking,
                "empty": f"every {unit} of the prompt masked (template and special tokens are kept)"}

    def describe(self) -> dict:
        return {
            "adapter": "CausalLM",
            "name": self.model_name,
            "architecture": type(self.model).__name__,
            "masking": self.masking,
            "grouping": self.grouping,
            "baseline_token_id": self.baseline_token_id,
            "context_token_id": self.context_token_id,
            "n_prompt_tokens": len(self.prompt_ids),
            "n_answer_tokens": len(self.answer_ids),
            "prefix_tokens": self.prefix_len,
            "prefix_cache": self._prefix_kv is not None,
            "dtype": str(next(self.model.parameters()).dtype),
            "device": str(self.device),
        }


__all__ = ["DEFAULT_MAX_ANSWER_TOKENS", "MASKING_MODES", "CausalLM", "MaskingMode", "PaddingSide", "check_causal", "context_length", "load_causal_lm"]
