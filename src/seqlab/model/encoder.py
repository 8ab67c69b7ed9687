"""The recurrent encoder: a (bi)directional LSTM or GRU over embedded source pieces."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqlab.model.cells import gru_update, lstm_update
from seqlab.model.dropout import Dropout
from seqlab.model.runtime import lstm_autocast
from seqlab.model.tape import WeightGradTape

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class EncoderOutput:
    """memory: (B, S, D) per-position states, D = H x directions;
    final_h: (B, D) last layer's final hidden state (both directions joined);
    final_c: (B, D) its LSTM cell state, or None for a GRU."""

    memory: torch.Tensor
    final_h: torch.Tensor
    final_c: torch.Tensor | None


class Encoder(nn.Module):
    def __init__(
        self,
        *,
        embed_dim: int,
        hidden_dim: int,
        layers: int,
        dropout: float,
        rnn_type: str = "lstm",
        bidirectional: bool = True,
        taped: bool = True,
    ) -> None:
        """taped: training on CPU runs the recurrence through a weight-gradient tape (see
        :meth:`forward`); False: the module's packed kernel always (slower, the tests' reference)."""
        super().__init__()
        self.rnn = RNNS[rnn_type](
            embed_dim,
            hidden_dim,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = Dropout(dropout)
        self.directions = 2 if bidirectional else 1
        self.output_dim = self.directions * hidden_dim
        self.taped = taped

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """embedded: (B, S, E); lengths: (B,) on any device.

        Packing makes each sentence's states independent of the padding around
        it, which is what lets a sentence decode the same alone or in a batch.

        Training on CPU, when ``taped``, runs the recurrence itself
        (:func:`_taped`), the same arithmetic as the module's packed kernel
        arranged for speed: both directions step together as one batched
        product, the recurrent weight's gradient is one product per sequence
        (a WeightGradTape) instead of one per step, and every step's input
        gates are split from one product without the kernel's per-step
        zero-filled gradient slices.
        """
        packed = pack_padded_sequence(self.dropout(embedded), lengths.cpu(), batch_first=True, enforce_sorted=False)
        if self.taped and torch.is_grad_enabled() and embedded.device.type == "cpu":
            data, h, c = _taped(self.rnn, packed)
            out = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
            # the taped recurrence works in sorted order; the module's final states are in batch order
            h, c = h.index_select(1, packed.unsorted_indices), None if c is None else c.index_select(1, packed.unsorted_indices)
        else:
            lstm = isinstance(self.rnn, nn.LSTM)
            with lstm_autocast(embedded.device) if lstm else contextlib.nullcontext():
                out, final = self.rnn(packed)
            h, c = final if isinstance(final, tuple) else (final, None)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=embedded.size(1))
        return EncoderOutput(
            memory=self.dropout(memory), final_h=self._last_layer(h), final_c=None if c is None else self._last_layer(c)
        )

    def _last_layer(self, state: torch.Tensor) -> torch.Tensor:
        """(layers * directions, B, H) -> (B, directions * H) for the top layer."""
        return torch.cat(tuple(state[-self.directions :]), dim=-1)


def _taped(rnn: nn.LSTM | nn.GRU, packed: PackedSequence) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``rnn(packed)`` for training; rows in sorted (longest first) order.

    Returns the output data (tokens, D) and final h, c (layers * directions, B, H).
    The reverse direction runs forward over each sentence reversed within its
    length, which is again a packed batch with the same batch sizes, so both
    directions step together: one batched product and one set of gate
    operations for the two.
    """
    sizes = packed.batch_sizes.tolist()
    offsets = torch.tensor([0, *sizes]).cumsum(0)
    reverse = _reversed_order(packed.batch_sizes, offsets) if rnn.bidirectional else None
    lstm = isinstance(rnn, nn.LSTM)
    data, finals_h, finals_c = packed.data, [], []
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0 and rnn.training:
            data = nn.functional.dropout(data, rnn.dropout)
        suffixes = ("", "_reverse") if rnn.bidirectional else ("",)
        weight_ih, weight_hh, bias_ih, bias_hh = (
            torch.stack([getattr(rnn, f"{name}_l{layer}{suffix}") for suffix in suffixes]) for name in _WEIGHTS
        )
        x = torch.stack((data, data.index_select(0, reverse))) if reverse is not None else data.unsqueeze(0)
        # every step's input product at once: (directions, tokens, gates); an LSTM's two biases add up,
        # per direction before stacking: stacked first, both biases' .grad became views of one buffer,
        # and a second backward (gradient accumulation) added into it twice
        bias = (torch.stack([getattr(rnn, f"bias_ih_l{layer}{s}") + getattr(rnn, f"bias_hh_l{layer}{s}")
                             for s in suffixes]) if lstm else bias_ih).unsqueeze(1)
        # in the parameters' dtype: under autocast the gates then sum in fp32 and the cell state stays fp32
        gates_in = torch.baddbmm(bias, x, weight_ih.transpose(1, 2)).to(bias.dtype)
        out, h, c = _recurrence(gates_in, weight_hh, None if lstm else bias_hh.unsqueeze(1), sizes=sizes)
        data = torch.cat((out[0], out[1].index_select(0, reverse)), dim=-1) if reverse is not None else out[0]
        finals_h.extend(h.unbind(0))
        finals_c.extend([None] * h.size(0) if c is None else c.unbind(0))
    c = None if finals_c[0] is None else torch.stack(finals_c)
    return data, torch.stack(finals_h), c


_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _recurrence(
    gates_in: torch.Tensor, weight_hh: torch.Tensor, gru_bias_hh: torch.Tensor | None, *, sizes: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One layer's steps over packed rows, each direction its own batch entry.

    gates_in: (Dir, tokens, G) input products plus biases; weight_hh: (Dir, G, H);
    gru_bias_hh: (Dir, 1, G) for a GRU (its reset gate scales W_hh h + b_hh), None
    for an LSTM; sizes: rows per step, non-increasing. Returns outputs (Dir,
    tokens, H) and each row's final h and c (Dir, B, H) (c None for a GRU).
    The recurrent product goes through a :class:`WeightGradTape`: its weight
    gradient is one product per sequence, not one per step.
    """
    lstm = gru_bias_hh is None
    tape = WeightGradTape([weight_hh])
    h0 = gates_in.new_zeros(gates_in.size(0), sizes[0], weight_hh.size(-1))
    h, gates_in = tape.anchor(h0, gates_in)
    c = torch.zeros_like(h0) if lstm else None
    outs, ended_h, ended_c = [], [], []
    for n, step_in in zip(sizes, gates_in.split(sizes, dim=1)):
        if n < h.size(1):  # rows n.. ended with the previous step; they are in length order
            ended_h.append(h[:, n:])
            h = h[:, :n]
            if lstm:
                ended_c.append(c[:, n:])
                c = c[:, :n]
        if lstm:
            h, c = lstm_update(tape.linear(weight_hh, h, step_in), c)
        else:
            h = gru_update(step_in, tape.linear(weight_hh, h, gru_bias_hh), h)
        outs.append(h)
    # the rows that end last are the longest: first in sorted order
    final_h = torch.cat([h, *ended_h[::-1]], dim=1)
    final_c = torch.cat([c, *ended_c[::-1]], dim=1) if lstm else None
    return torch.cat(outs, dim=1), final_h, final_c


def _reversed_order(batch_sizes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(tokens,) packed positions of every sentence reversed within its length.

    Position (t, r) of the result, r < batch_sizes[t], reads row r at time
    length_r - 1 - t; applying the order twice gives the identity.
    """
    steps = torch.arange(batch_sizes.numel())
    time = steps.repeat_interleave(batch_sizes)  # (tokens,) t of each packed position
    row = torch.arange(time.numel()) - offsets[time]
    lengths = (batch_sizes.unsqueeze(0) > torch.arange(int(batch_sizes[0])).unsqueeze(1)).sum(1)  # (B,) sorted
    return offsets[lengths[row] - 1 - time] + row
