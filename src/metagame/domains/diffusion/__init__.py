"""Multimodal diffusion transformers (diffusers ``FluxTransformer2DModel``, ``SD3Transformer2DModel``) seen
through ConceptAttention (Helbling et al., 2025).

ConceptAttention adds concept tokens as an extra stream that runs through the joint-attention blocks with the
*text* stream's weights (adaptive norm, q/k/v projections and q/k norms, output projection, feed-forward).
Concept queries attend to [concepts; image patches]; the image never attends to the concepts, so the image and
the model's output are unchanged. In block b at denoising step t, o_c is a concept's attention output and o_p a
patch's (both before the output projection, heads concatenated); the concept map is

    φ_c(x_S)[p] = mean over the chosen (t, b) of softmax_{c' ∈ S} ⟨o_{c'}, o_p⟩ [c]      (c ∈ S; 0 for c ∉ S).

Concepts are embedded like prompt tokens (the first T5 token of each concept encoded on its own, as in the
paper's code) and placed at text position 0 (Flux RoPE ids of zero, like the prompt). Their adaptive norms use the
block's own time embedding (timestep + pooled prompt), so a concept's stream depends on the coalition only
through attention; the authors' diffusers port modulates with a pooled embedding of the joined concept words,
which would make every stream depend on which concepts are present.

Players are the concepts (the coalition S says which concepts enter the stream and the softmax) or, in word
mode, the words of the prompt (absent words are removed from every joint attention by the attention mask,
text embeddings and image latents held fixed; the map of word w uses the mean attention output of its tokens).

Routes for the concept players, both exact:

* ``"decoupled"``: concept tokens do not attend to each other, so one forward gives every concept's raw
  concept–patch scores and a coalition only changes which concepts enter the softmax: all 2^d coalitions
  cost one partial forward per denoising step.
* ``"coupled"``: concepts attend to each other (the paper's default); each coalition has its own concept
  stream (only its present concepts, packed; attention masked per coalition). The image stream is shared by
  all coalitions (it never sees the concepts), so one partial forward per step serves every coalition, in
  chunks.

The transformer is re-run on the inputs it saw during generation (captured by :func:`generate`), only up to
the last joint block that is read. Hooks and swapped attention processors are removed after every run, also
when the run fails.
"""

from .. import lazy_exports

_NAMES = {
    "DiffusionConceptModel": "adapter",
    "BATCHED_KEYS": "inputs",
    "CHUNK_FLOATS": "inputs",
    "STEP_KEYS": "inputs",
    "Family": "inputs",
    "PlayerMode": "inputs",
    "Route": "inputs",
    "StepInputs": "inputs",
    "check_blocks": "inputs",
    "default_blocks": "inputs",
    "generate": "inputs",
    "joint_blocks": "inputs",
    "patch_grid": "inputs",
    "resolve_route": "inputs",
    "run_transformer": "inputs",
    "single_row": "inputs",
    "transformer_family": "inputs",
    "MaskedJointAttnProcessor": "masking",
    "masked_text_forward": "masking",
    "text_masking": "masking",
    "ConceptStreams": "streams",
    "HookSet": "streams",
    "masked_softmax": "streams",
}
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
