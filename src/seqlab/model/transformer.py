"""The Transformer encoder-decoder (``model.arch: transformer``), beside the RNN's :class:`Seq2Seq`.

It offers search and training the same seam: ``encode`` gives a state with
``select``/``reorder``, ``decode_step`` one next-token distribution per row, and
``forward`` the teacher-forced scores for the loss. Decoding is incremental:
the state carries every decoder layer's self-attention keys/values of the prefix
(:class:`~seqlab.model.step_cache.StepCache`), and the cross-attention keys/values,
computed once per source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from seqlab.core.run_config import ModelConfig
from seqlab.model.state import shared_sources
from seqlab.model.dropout import Dropout
from seqlab.model.output_space import OutputSpace, TiedRowsOutput
from seqlab.model.seq2seq import ModelOutput, StepOutput
from seqlab.model.step_cache import StepCache
from seqlab.model.transformer_copy import CopyHead, mix_copy
from seqlab.model.transformer_layers import (
    DecoderLayer,
    EncoderLayer,
    KeyValues,
    Positions,
)
from seqlab.tokenizer import PAD_ID


@dataclass(frozen=True)
class TransformerState:
    """What decoding needs, for N rows (sentences, or sentences x beams).

    cache: every decoder layer's self-attention keys/values of the t positions
    fed so far, N rows (used once: decode from the state a step returns). The encoder side has one row per source (n rows),
    shared by the ``rows_per_source`` = N / n consecutive rows that decode it:
    cross: per decoder layer, keys/values of the encoder states (n, H, S, Dh);
    src_mask: (n, S) True on tokens; src_ids: (n, S). output_rows: (V_out, D) the
    output weight with tied target rows (gathered at ``encode``), else None.
    """

    cache: StepCache
    cross: tuple[KeyValues, ...]
    src_mask: torch.Tensor
    src_ids: torch.Tensor
    rows_per_source: int = 1
    copy: KeyValues | None = None  # the copy head's keys/values (n, 1, S, ...), with model.copy
    output_rows: torch.Tensor | None = None

    @property
    def position(self) -> int:
        """Positions fed so far: the next token's position."""
        return self.cache.length

    def select(self, index: torch.Tensor) -> TransformerState:
        """Rows ``index`` (drop finished sentences, expand to beams); the encoder-side fields follow."""
        sources, width = shared_sources(torch.div(index, self.rows_per_source, rounding_mode="floor"))
        return TransformerState(
            cache=self.cache.select(index),
            cross=_rows(self.cross, sources),
            src_mask=self.src_mask.index_select(0, sources),
            src_ids=self.src_ids.index_select(0, sources),
            rows_per_source=width,
            copy=None if self.copy is None else _rows((self.copy,), sources)[0],
            output_rows=self.output_rows,
        )

    def reorder(self, index: torch.Tensor) -> TransformerState:
        """Follow beam back-pointers; ``index`` stays within each sentence's rows, so the encoder side stays."""
        return replace(self, cache=self.cache.select(index))


@dataclass(frozen=True)
class Decoded:
    """hidden: (N, T, D) the decoder's normed outputs; attention: (N, T, S) the last layer's
    cross-attention, or None when not asked for."""

    hidden: torch.Tensor
    attention: torch.Tensor | None


@dataclass(frozen=True)
class Scores:
    """scores: (N, T, V_out) logits, or log-probabilities when ``normalized`` (copying mixes two
    distributions); attention: (N, T, S) the copy distribution, or None."""

    scores: torch.Tensor
    normalized: bool
    attention: torch.Tensor | None


def _rows(layers: tuple[KeyValues, ...], index: torch.Tensor) -> tuple[KeyValues, ...]:
    return tuple(KeyValues(kv.keys.index_select(0, index), kv.values.index_select(0, index)) for kv in layers)


class Transformer(OutputSpace):
    """Pre-norm (or post-norm) encoder-decoder; outputs indexed as :class:`OutputSpace` says."""

    def __init__(self, config: ModelConfig, *, src_vocab: int, tgt_vocab: int,
                 output_ids: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        outputs = self.init_output_space(tgt_vocab=tgt_vocab, output_ids=output_ids,
                                         target_only=config.output_vocab == "target")
        dim = config.model_dim
        self.src_embed = nn.Embedding(src_vocab, dim, padding_idx=PAD_ID)
        self.tgt_embed = self.src_embed if config.share_embeddings else nn.Embedding(tgt_vocab, dim, padding_idx=PAD_ID)
        self.positions = Positions(config)
        self.embed_scale = math.sqrt(dim) if config.scale_embeddings else 1.0
        self.embed_dropout = Dropout(config.dropout)
        self.encoder_layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        # Pre-norm leaves the residual stream unnormalised: one norm closes each stack.
        pre = config.norm == "pre"
        self.encoder_norm = nn.LayerNorm(dim) if pre else nn.Identity()
        self.decoder_norm = nn.LayerNorm(dim) if pre else nn.Identity()
        # Tied with output_vocab: target, the output weight is the embedding's rows of the output pieces.
        rows = config.tie_embeddings and output_ids is not None
        self.output = TiedRowsOutput(outputs) if rows else nn.Linear(dim, outputs)
        self.copy_head = CopyHead(dim) if config.copy else None
        self._init_weights()
        if config.tie_embeddings and not rows:
            self.output.weight = self.tgt_embed.weight

    def _init_weights(self) -> None:
        # Xavier for the projections; embeddings at 1/sqrt(D) so that, scaled by sqrt(D), they
        # start at the positions' magnitude.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding) and module is not self.positions.learned:
                nn.init.normal_(module.weight, std=self.config.model_dim ** -0.5)
                with torch.no_grad():
                    module.weight[PAD_ID].zero_()

    def _embed(self, embedding: nn.Embedding, ids: torch.Tensor, start: int) -> torch.Tensor:
        """ids: (B, L) at positions start .. start + L - 1 -> (B, L, D)."""
        x = embedding(ids) * self.embed_scale + self.positions(start, ids.size(1))
        return self.embed_dropout(x)

    def encoder_states(self, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """src: (B, S) ids; mask: (B, S) True on tokens. Encoder output (B, S, D)."""
        x = self._embed(self.src_embed, src, 0)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return self.encoder_norm(x)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> TransformerState:
        """src: (B, S) ids, padded with PAD (the mask comes from it; src_lengths: (B,) agree).
        Returns the state for B rows at position 0, with each decoder layer's cross keys/values."""
        mask = src != PAD_ID
        memory = self.encoder_states(src, mask)
        cross = tuple(layer.cross_attention.project(memory) for layer in self.decoder_layers)
        heads = self.config.heads
        cache = StepCache.empty(src.size(0), layers=len(self.decoder_layers), heads=heads,
                                head_dim=self.config.model_dim // heads, like=memory)
        copy = None if self.copy_head is None else self.copy_head.project(memory)
        tied_rows = isinstance(self.output, TiedRowsOutput)
        rows = self.tgt_embed.weight.index_select(0, self.output_ids) if tied_rows else None
        return TransformerState(cache=cache, cross=cross, src_mask=mask, src_ids=src, copy=copy, output_rows=rows)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> ModelOutput:
        """Teacher forcing. tgt_in: (B, T) BOS + target. Scores (B, T, V_out); padded target positions
        come last, and causal attention keeps the real ones from seeing them."""
        state = self.encode(src, src_lengths)
        embedded = self._embed(self.tgt_embed, tgt_in, 0)
        decoded = self._decode(embedded, state, cache=None)
        scores = self._scores(decoded.hidden, embedded, state)
        return ModelOutput(scores=scores.scores, normalized=scores.normalized,
                           coverage_loss=scores.scores.new_zeros((), dtype=torch.float32))

    def decode_step(self, prev_tokens: torch.Tensor, state: TransformerState) -> StepOutput:
        """prev_tokens: (N,) last emitted output indices. Log-probabilities (N, V_out); attention: (N, S),
        the copy head's with model.copy, else the last decoder layer's cross-attention averaged over heads."""
        embedded = self._embed(self.tgt_embed, self.to_pieces(prev_tokens).unsqueeze(1), state.position)  # (N, 1, D)
        cache = state.cache.advance()
        decoded = self._decode(embedded, state, cache=cache)
        scores = self._scores(decoded.hidden, embedded, state)
        log_probs = scores.scores.squeeze(1)
        if not scores.normalized:
            log_probs = torch.log_softmax(log_probs.float(), dim=-1)
        attention = decoded.attention if scores.attention is None else scores.attention
        return StepOutput(log_probs=log_probs, state=replace(state, cache=cache),
                          attention=attention.squeeze(1))

    def _decode(self, embedded: torch.Tensor, state: TransformerState, *, cache: StepCache | None) -> Decoded:
        """embedded: (N, T, D) inputs at the state's next positions: one, stored in ``cache`` (advanced for
        it), or teacher forcing from position 0 without a cache. Search reads the last layer's
        cross-attention unless the copy head gives its own."""
        x, last = embedded, len(self.decoder_layers) - 1
        weights = cache is not None and self.copy_head is None
        for i, (layer, memory) in enumerate(zip(self.decoder_layers, state.cross)):
            out = layer(x, memory=memory, src_mask=state.src_mask, cache=cache, index=i, weights=weights and i == last)
            x = out.x
        return Decoded(hidden=self.decoder_norm(x), attention=out.weights)

    def _scores(self, hidden: torch.Tensor, embedded: torch.Tensor, state: TransformerState) -> Scores:
        logits = self.output(hidden) if state.output_rows is None else self.output(hidden, state.output_rows)
        if self.copy_head is None:
            return Scores(scores=logits, normalized=False, attention=None)
        copy = self.copy_head(hidden, embedded, state.copy, src_mask=state.src_mask)
        src = state.src_ids.repeat_interleave(state.rows_per_source, dim=0)
        return Scores(scores=mix_copy(logits, copy, src), normalized=True, attention=copy.attention)
