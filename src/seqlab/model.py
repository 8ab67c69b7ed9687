"""The attention seq2seq model: wiring of embeddings, encoder, bridge, decoder, output.

:func:`build_model` is the one factory; :meth:`Seq2Seq.decode_step` is the one
seam through which search talks to the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqlab.config import ModelConfig
from seqlab.decoder import Decoder, DecoderState
from seqlab.encoder import Encoder
from seqlab.errors import ConfigError
from seqlab.tokenizer import PAD_ID


@dataclass(frozen=True)
class StepOutput:
    """log_probs: (N, V) float32; state: the next DecoderState; attention: (N, S)."""

    log_probs: torch.Tensor
    state: DecoderState
    attention: torch.Tensor


class Seq2Seq(nn.Module):
    def __init__(self, config: ModelConfig, *, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        self.config = config
        self.src_embed = nn.Embedding(src_vocab, config.embed_dim, padding_idx=PAD_ID)
        self.tgt_embed = (
            self.src_embed
            if config.share_embeddings
            else nn.Embedding(tgt_vocab, config.embed_dim, padding_idx=PAD_ID)
        )
        self.encoder = Encoder(
            embed_dim=config.embed_dim,
            hidden_dim=config.hidden_dim,
            layers=config.encoder_layers,
            dropout=config.dropout,
        )
        self.bridge_h = nn.Linear(self.encoder.output_dim, config.hidden_dim)
        self.bridge_c = nn.Linear(self.encoder.output_dim, config.hidden_dim)
        self.decoder = Decoder(
            embed_dim=config.embed_dim,
            hidden_dim=config.hidden_dim,
            memory_dim=self.encoder.output_dim,
            attention_dim=config.attention_dim,
            layers=config.decoder_layers,
            dropout=config.dropout,
        )
        self.output_dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_dim, tgt_vocab)
        if config.tie_embeddings:
            self.output.weight = self.tgt_embed.weight

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> DecoderState:
        """src: (B, S) ids; src_lengths: (B,). Returns the decoder's initial state for B rows."""
        encoded = self.encoder(self.src_embed(src), src_lengths)
        layers = self.config.decoder_layers
        # The bridge turns the encoder's summary into the decoder's start state,
        # repeated for every decoder layer.
        hidden = torch.tanh(self.bridge_h(encoded.final_h)).unsqueeze(0).repeat(layers, 1, 1)
        cell = torch.tanh(self.bridge_c(encoded.final_c)).unsqueeze(0).repeat(layers, 1, 1)
        memory = encoded.memory
        return DecoderState(
            hidden=hidden,
            cell=cell,
            feed=memory.new_zeros(memory.size(0), self.config.hidden_dim),
            memory=memory,
            proj_keys=self.decoder.attention.project_keys(memory),
            src_mask=src != PAD_ID,
        )

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing. tgt_in: (B, T) BOS + target. Returns logits (B, T, V)."""
        state = self.encode(src, src_lengths)
        embedded = self.tgt_embed(tgt_in)
        feeds = []
        for t in range(tgt_in.size(1)):
            feed, state, _ = self.decoder.step(embedded[:, t], state)
            feeds.append(feed)
        # One big output projection for all steps is far cheaper than T small ones.
        return self.output(self.output_dropout(torch.stack(feeds, dim=1)))

    def decode_step(self, prev_tokens: torch.Tensor, state: DecoderState) -> StepOutput:
        """prev_tokens: (N,) last emitted ids. Next-token log-probabilities for each row."""
        feed, state, weights = self.decoder.step(self.tgt_embed(prev_tokens), state)
        logits = self.output(self.output_dropout(feed))
        return StepOutput(log_probs=torch.log_softmax(logits.float(), dim=-1), state=state, attention=weights)


def build_model(config: ModelConfig, *, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    """The model for ``config``; shared embeddings need one vocabulary for both sides."""
    if config.share_embeddings and src_vocab != tgt_vocab:
        raise ConfigError(
            "model.share_embeddings: needs a joint vocabulary (tokenizer.joint: true); "
            f"source has {src_vocab} pieces, target {tgt_vocab}"
        )
    return Seq2Seq(config, src_vocab=src_vocab, tgt_vocab=tgt_vocab)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
