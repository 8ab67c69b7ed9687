"""The attention seq2seq model: wiring of embeddings, encoder, bridge, decoder, output and copy gate.

:func:`build_model` is the one factory; :meth:`Seq2Seq.decode_step` is the one
seam through which search talks to the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqlab.core.errors import ConfigError
from seqlab.core.run_config import ModelConfig
from seqlab.model.decoder import Decoder, DecoderState
from seqlab.model.dropout import Dropout
from seqlab.model.encoder import Encoder
from seqlab.model.output_space import OutputSpace, mix_copy_probs
from seqlab.tokenizer import EOS_ID, PAD_ID

@dataclass(frozen=True)
class StepOutput:
    """log_probs: (N, V) float32; state: the next DecoderState; attention: (N, S)."""

    log_probs: torch.Tensor
    state: DecoderState
    attention: torch.Tensor


@dataclass(frozen=True)
class ModelOutput:
    """Teacher-forced next-token scores (B, T, V): log-probabilities when ``normalized``
    (copy models mix two distributions), else logits, so the loss can fuse the
    log-softmax into its own pass; coverage_loss: () sum over real target
    positions of sum_s min(attention, coverage), 0 without coverage."""

    scores: torch.Tensor
    normalized: bool
    coverage_loss: torch.Tensor

    @property
    def log_probs(self) -> torch.Tensor:
        """(B, T, V) float32 log-probabilities."""
        return self.scores if self.normalized else torch.log_softmax(self.scores.float(), dim=-1)


class Seq2Seq(OutputSpace):
    """The RNN. Outputs are indexed by piece id, or with ``model.output_vocab: target`` by
    position in ``output_ids`` (see :class:`OutputSpace`)."""

    def __init__(self, config: ModelConfig, *, src_vocab: int, tgt_vocab: int,
                 output_ids: torch.Tensor | None = None, taped: bool = True) -> None:
        """taped: training's decoder steps, and its encoder's on CPU, run through weight-gradient
        tapes; False: plain autograd, the tests' reference (same results up to rounding, slower)."""
        super().__init__()
        self.config = config
        outputs = self.init_output_space(tgt_vocab=tgt_vocab, output_ids=output_ids,
                                         target_only=config.output_vocab == "target")
        self.src_embed = nn.Embedding(src_vocab, config.embed_dim, padding_idx=PAD_ID)
        self.tgt_embed = (
            self.src_embed if config.share_embeddings else nn.Embedding(tgt_vocab, config.embed_dim, padding_idx=PAD_ID)
        )
        self.encoder = Encoder(
            embed_dim=config.embed_dim,
            hidden_dim=config.hidden_dim,
            layers=config.encoder_layers,
            dropout=config.dropout,
            rnn_type=config.rnn_type,
            bidirectional=config.bidirectional,
            taped=taped,
        )
        lstm = config.rnn_type == "lstm"
        self.bridge_h = nn.Linear(config.memory_dim, config.hidden_dim) if config.bridge else None
        self.bridge_c = nn.Linear(config.memory_dim, config.hidden_dim) if config.bridge and lstm else None
        self.decoder = Decoder(
            embed_dim=config.embed_dim,
            hidden_dim=config.hidden_dim,
            memory_dim=config.memory_dim,
            attention_dim=config.attention_dim,
            layers=config.decoder_layers,
            dropout=config.dropout,
            rnn_type=config.rnn_type,
            attention=config.attention,
            input_feeding=config.input_feeding,
            coverage=config.coverage,
            taped=taped,
        )
        self.output_dropout = Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_dim, outputs)
        if config.tie_embeddings:
            self.output.weight = self.tgt_embed.weight
        self.copy_gate = (
            nn.Linear(config.memory_dim + config.hidden_dim + config.embed_dim, 1) if config.copy else None
        )

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        """src: (B, S) ids; src_lengths: (B,). Returns the decoder's initial state for B rows."""
        encoded = self.encoder(self.src_embed(src), src_lengths)
        layers, batch = self.config.decoder_layers, src.size(0)
        memory = encoded.memory
        zeros = memory.new_zeros(layers, batch, self.config.hidden_dim)
        hidden, cell = zeros, (zeros if self.config.rnn_type == "lstm" else None)
        # The bridge turns the encoder's summary into the decoder's start state,
        # repeated for every decoder layer.
        if self.bridge_h is not None:
            hidden = torch.tanh(self.bridge_h(encoded.final_h)).unsqueeze(0).repeat(layers, 1, 1)
        if self.bridge_c is not None:
            cell = torch.tanh(self.bridge_c(encoded.final_c)).unsqueeze(0).repeat(layers, 1, 1)
        return DecoderState(
            hidden=hidden,
            cell=cell,
            feed=memory.new_zeros(batch, self.config.hidden_dim),
            memory=memory,
            proj_keys=self.decoder.attention.project_keys(memory),
            src_mask=src != PAD_ID,
            src_ids=src,
            coverage=memory.new_zeros(src.shape, dtype=torch.float32) if self.config.coverage else None,
            # The cheaper combine (the context half applied to the memory once); copying needs the plain context.
            memory_out=None if self.copy_gate is not None else self.decoder.project_memory(memory),
        )

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> ModelOutput:
        """Teacher forcing. tgt_in: (B, T) BOS + target."""
        state = self.encode(src, src_lengths)
        embedded = self.tgt_embed(tgt_in)
        feeds, weights, contexts, hiddens = [], [], [], []
        for step in self.decoder.teacher_force(embedded, state):
            feeds.append(step.feed)
            weights.append(step.weights)
            if self.copy_gate is not None:
                contexts.append(step.context)
                hiddens.append(step.hidden)
        attention = torch.stack(weights, dim=1)  # (B, T, S)
        # One big output projection for all steps is far cheaper than T small ones.
        logits = self.output(self.output_dropout(torch.stack(feeds, dim=1)))
        coverage_loss = self._coverage_loss(attention, tgt_in != PAD_ID)
        if self.copy_gate is None:
            return ModelOutput(scores=logits, normalized=False, coverage_loss=coverage_loss)
        gate_input = torch.cat((torch.stack(contexts, dim=1), torch.stack(hiddens, dim=1), embedded), dim=-1)
        log_probs = self._mix_copy(logits, gate_input, attention, src)
        return ModelOutput(scores=log_probs, normalized=True, coverage_loss=coverage_loss)

    def decode_step(self, prev_tokens: torch.Tensor, state: DecoderState) -> StepOutput:
        """prev_tokens: (N,) last emitted output indices. Next-token log-probabilities (N, V_out) for each row."""
        embedded = self.tgt_embed(self.to_pieces(prev_tokens))
        step = self.decoder.step(embedded, state)
        logits = self.output(self.output_dropout(step.feed))
        if self.copy_gate is None:
            log_probs = torch.log_softmax(logits.float(), dim=-1)
        else:
            gate_input = torch.cat((step.context, step.hidden, embedded), dim=-1)
            log_probs = self._mix_copy(
                logits.unsqueeze(1), gate_input.unsqueeze(1), step.weights.unsqueeze(1), state.row_src_ids()
            ).squeeze(1)
        return StepOutput(log_probs=log_probs, state=step.state, attention=step.weights)

    def _mix_copy(
        self, logits: torch.Tensor, gate_input: torch.Tensor, attention: torch.Tensor, src: torch.Tensor
    ) -> torch.Tensor:
        """Pointer-generator mixture. logits: (B, T, V); gate_input: (B, T, G); attention: (B, T, S);
        src: (B, S). Returns log P = log(p_gen * P_vocab + (1 - p_gen) * P_copy), (B, T, V) float32."""
        p_gen = torch.sigmoid(self.copy_gate(gate_input).float())  # (B, T, 1)
        return mix_copy_probs(logits, p_gen, attention, src)

    def _coverage_loss(self, attention: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
        """sum_t sum_s min(a_t, c_t) with c_t the attention summed over earlier steps (See et al. 2017)."""
        if not self.config.coverage:
            return attention.new_zeros((), dtype=torch.float32)
        attention = attention.float()
        coverage = attention.cumsum(dim=1) - attention
        per_step = torch.minimum(attention, coverage).sum(dim=-1)  # (B, T)
        return (per_step * target_mask).sum()


def output_pieces(targets: Iterable[np.ndarray], vocab_size: int) -> torch.Tensor:
    """(V_out,) sorted ids of the pieces ``targets`` use, PAD, UNK, BOS and EOS always among them."""
    used = np.zeros(vocab_size, dtype=bool)
    used[: EOS_ID + 1] = True
    for ids in targets:
        used[ids] = True
    return torch.from_numpy(np.flatnonzero(used))


def build_model(config: ModelConfig, *, src_vocab: int, tgt_vocab: int,
                output_ids: torch.Tensor | None = None, taped: bool = True) -> nn.Module:
    """The model for ``config.arch``: :class:`Seq2Seq` or the Transformer; shared embeddings and
    copying need one vocabulary for both sides. output_ids: with ``output_vocab: target``, the
    target pieces (:func:`output_pieces`); taped: the RNN's training products (see :class:`Seq2Seq`)."""
    for name in ("share_embeddings", "copy"):
        if getattr(config, name) and src_vocab != tgt_vocab:
            raise ConfigError(
                f"model.{name}: needs a joint vocabulary (tokenizer.joint: true); "
                f"source has {src_vocab} pieces, target {tgt_vocab}"
            )
    if config.arch == "transformer":
        # Imported here: the transformer module builds on this one's output types.
        from seqlab.model.transformer import Transformer

        return Transformer(config, src_vocab=src_vocab, tgt_vocab=tgt_vocab, output_ids=output_ids)
    return Seq2Seq(config, src_vocab=src_vocab, tgt_vocab=tgt_vocab, output_ids=output_ids, taped=taped)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
