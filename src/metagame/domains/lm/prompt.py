"""The text side of the causal-LM adapter: the prompt inside the chat template, the context token of a prompt
without a prefix, the answer (given or generated once) and the replacement token of mask-token masking."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...errors import MetagameError

#: a generated answer ends before a token that starts with one of these (the end of its first phrase)
PHRASE_END = frozenset(".,;:!?\n")


class PromptSetup:
    """Mixin of :class:`~metagame.domains.lm.adapter.CausalLM` (uses its ``tokenizer``, ``model``, ``prompt_ids``,
    ``vocab_size``, ``limit`` and ``max_answer_tokens``)."""

    def _encode_prompt(self, prompt: str, chat_template: bool | None, system_prompt: str | None):
        tok = self.tokenizer
        has_template = bool(getattr(tok, "chat_template", None))
        use = has_template if chat_template is None else bool(chat_template)
        if use and not has_template:
            raise MetagameError("this tokenizer has no chat template; pass chat_template=False (plain prompt) or a tokenizer with one")
        if use:
            messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
                {"role": "user", "content": prompt}
            ]
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            start = text.rfind(prompt)
            if start < 0:
                raise MetagameError(
                    "the chat template rewrote the prompt text, so its words cannot be located; pass chat_template=False"
                )
            add_special = False
        else:
            if system_prompt:
                raise MetagameError("system_prompt needs a chat template; drop it or use a tokenizer with a chat template")
            text, start, add_special = prompt, 0, True
        enc = tok(text, add_special_tokens=add_special, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], text, (start, start + len(prompt))

    def _context_token(self) -> int:
        tok = self.tokenizer
        for tid in (tok.bos_token_id, tok.eos_token_id, getattr(self.model.config, "bos_token_id", None)):
            if isinstance(tid, int) and 0 <= tid < self.vocab_size:
                return tid
        raise MetagameError(
            "nothing precedes the prompt's first word (no chat template, no BOS token), so the answer would have no "
            "context when every word is masked; use a tokenizer with a BOS or EOS token, a chat template, or set "
            "tokenizer.bos_token"
        )

    def _check_length(self, n: int, what: str) -> None:
        if self.limit is not None and n > self.limit:
            raise MetagameError(
                f"{what} needs {n} tokens but the model's context is {self.limit} tokens; shorten the prompt "
                f"(or the answer / max_answer_tokens)"
            )

    def _tokenize_answer(self, text: str | Sequence[int], what: str) -> list[int]:
        if not isinstance(text, str):
            ids = [int(t) for t in np.asarray(text, dtype=np.int64).reshape(-1)]
            if not ids or min(ids) < 0 or max(ids) >= self.vocab_size:
                raise MetagameError(f"the {what} token ids must be a non-empty list of ids in [0, {self.vocab_size})")
            return ids
        if not text:
            raise MetagameError(f"the {what} is empty; pass a non-empty {what} or leave answer=None to generate one")
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise MetagameError(f"the {what} {text!r} tokenizes to nothing; pass a different {what}")
        return [int(t) for t in ids]

    def _generate(self) -> list[int]:
        from transformers import GenerationConfig

        tok = self.tokenizer
        eos = tok.eos_token_id if tok.eos_token_id is not None else getattr(self.model.config, "eos_token_id", None)
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        cfg = GenerationConfig(
            max_new_tokens=self.max_answer_tokens, do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=eos
        )
        ids = torch.as_tensor([self.prompt_ids], device=self.device)
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=cfg)
        new = [int(t) for t in out[0, len(self.prompt_ids) :].tolist()]
        eos_set = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        for k, t in enumerate(new):
            # the answer stops before end-of-sequence and before the punctuation or line break that ends its first
            # phrase ("Positive: The food ..." -> "Positive"); an immediate stop is itself the answer
            if t in eos_set or (k > 0 and tok.decode([t]).lstrip(" ")[:1] in PHRASE_END):
                return new[:k] if k > 0 else new[:1]
        return new

    def _baseline_token(self, baseline_token: str | int | None) -> int:
        tok = self.tokenizer
        if baseline_token is not None:
            if isinstance(baseline_token, (int, np.integer)):
                tid = int(baseline_token)
            else:
                tid = tok.convert_tokens_to_ids(baseline_token)
                if tid is None or (tok.unk_token_id is not None and tid == tok.unk_token_id and baseline_token != tok.unk_token):
                    raise MetagameError(f"baseline_token {baseline_token!r} is not a token of this tokenizer; pass one of its tokens or an id")
            if not 0 <= tid < self.vocab_size:
                raise MetagameError(f"baseline_token id {tid} is outside the vocabulary (size {self.vocab_size})")
            return tid
        for tid in (tok.mask_token_id, tok.pad_token_id, tok.unk_token_id):
            if tid is not None:
                return int(tid)
        raise MetagameError(
            "masking='mask_token' needs a replacement token, but this tokenizer has no mask, pad or unk token; "
            "pass baseline_token='...' or use masking='attention'"
        )

    def f_description(self) -> str:
        """What f scores, in words, token by token (the answer's tokens and, with an alternative, its tokens)."""

        def tokens(ids: list[int]) -> str:
            return " ".join(repr(self.tokenizer.decode([t])) for t in ids)

        def scored(kind: str, ids: list[int]) -> str:
            k = len(ids)
            return f"the {k} {kind} token{'s' * (k > 1)} {tokens(ids)}"

        where = "prompt in the chat template" if self.chat_template_used else "prompt"
        text = f"log p({self.answer!r} | {where})"
        if self.alternative_ids is not None:
            text += f" − log p({self.alternative!r} | {where})"
        text += (f" = sum of the log-probabilities of {scored('answer', self.answer_ids)}"
                 + (" (generated greedily)" if self.generated else ""))
        if self.alternative_ids is not None:
            text += f", minus the same for {scored('alternative', self.alternative_ids)}"
        return text + ", each given the prompt and the tokens of its answer before it"


__all__ = ["PHRASE_END", "PromptSetup"]
