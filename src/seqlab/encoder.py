"""The recurrent encoder: a (bi)directional LSTM or GRU over embedded source pieces."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqlab.dropout import Dropout

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}

# Time steps per packed RNN call when training on CPU (0: one call); see Encoder.forward.
CPU_CHUNK_STEPS = 6


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
    ) -> None:
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

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """embedded: (B, S, E); lengths: (B,) on any device.

        Packing makes each sentence's states independent of the padding around
        it, which is what lets a sentence decode the same alone or in a batch.

        Training on CPU runs the packed RNN a few time steps per call: PyTorch's
        CPU kernel slices every step's input gates out of one (tokens, gates)
        tensor, and each slice's backward writes and adds a zero-filled tensor of
        that full size, quadratic in the source length (200 x 22 tokens, forward
        and backward: 493 ms in one call, 425 ms in chunks of 6 steps). The
        result is the same.
        """
        packed = pack_padded_sequence(self.dropout(embedded), lengths.cpu(), batch_first=True, enforce_sorted=False)
        if CPU_CHUNK_STEPS and torch.is_grad_enabled() and embedded.device.type == "cpu":
            data, h, c = _chunked(self.rnn, packed, steps=CPU_CHUNK_STEPS)
            out = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
            # the chunks work in sorted order; the module's final states are in batch order
            h, c = h.index_select(1, packed.unsorted_indices), None if c is None else c.index_select(1, packed.unsorted_indices)
        else:
            out, final = self.rnn(packed)
            h, c = final if isinstance(final, tuple) else (final, None)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=embedded.size(1))
        return EncoderOutput(
            memory=self.dropout(memory), final_h=self._last_layer(h), final_c=None if c is None else self._last_layer(c)
        )

    def _last_layer(self, state: torch.Tensor) -> torch.Tensor:
        """(layers * directions, B, H) -> (B, directions * H) for the top layer."""
        return torch.cat(tuple(state[-self.directions :]), dim=-1)


def _chunked(rnn: nn.LSTM | nn.GRU, packed: PackedSequence, *, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``rnn(packed)`` computed ``steps`` time steps per call; rows in sorted (longest first) order.

    Returns the output data (tokens, D) and final h, c (layers * directions, B, H).
    The reverse direction runs forward over each sentence reversed within its
    length, which is again a packed batch with the same batch sizes.
    """
    sizes = packed.batch_sizes.tolist()
    bounds = list(range(0, len(sizes), steps)) + [len(sizes)]
    offsets = torch.tensor([0, *sizes]).cumsum(0)
    reverse = _reversed_order(packed.batch_sizes, offsets) if rnn.bidirectional else None
    starts = offsets.tolist()
    data, finals_h, finals_c = packed.data, [], []
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0 and rnn.training:
            data = nn.functional.dropout(data, rnn.dropout)
        outs = []
        for direction in ("", "_reverse") if rnn.bidirectional else ("",):
            weights = [getattr(rnn, f"{name}_l{layer}{direction}") for name in _WEIGHTS]
            x = data.index_select(0, reverse) if direction else data
            out, h, c = _forward_in_chunks(rnn, x, weights, sizes=sizes, offsets=starts, bounds=bounds)
            outs.append(out.index_select(0, reverse) if direction else out)  # the order is its own inverse
            finals_h.append(h)
            finals_c.append(c)
        data = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
    c = None if finals_c[0] is None else torch.stack(finals_c)
    return data, torch.stack(finals_h), c


_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


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


def _forward_in_chunks(
    rnn: nn.LSTM | nn.GRU, data: torch.Tensor, weights: list[torch.Tensor], *, sizes: list[int], offsets: list[int], bounds: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One layer, forward in time, over chunks [a, b) of steps, carrying the state between them.

    data: (tokens, D_in) packed; sizes: rows per step; offsets: each step's first
    packed position (and the total); bounds: chunk edges. Returns (tokens, H)
    outputs and each row's final h and c (B, H) (c None for a GRU).

    Rows are sorted longest first, so chunk [a, b) has sizes[a] rows, of which
    the first sizes[b] continue into the next chunk and the others end inside
    it, with the chunk's final state. The state is (h, c) for an LSTM, (h,) for a GRU.
    """
    lstm = isinstance(rnn, nn.LSTM)
    outs, ended = [], []
    state = (data.new_zeros(1, sizes[0], rnn.hidden_size),) * (2 if lstm else 1)
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows, carried = sizes[a], sizes[b] if b < len(sizes) else 0
        start = tuple(part[:, :rows] for part in state)
        x, chunk_sizes = data[offsets[a] : offsets[b]], torch.tensor(sizes[a:b])
        # the packed-input op behind nn.LSTM / nn.GRU: (input, batch_sizes, hx, params,
        # has_biases, num_layers, dropout, train, bidirectional)
        if lstm:
            out, *state = torch.lstm(x, chunk_sizes, start, weights, True, 1, 0.0, rnn.training, False)
        else:
            out, h = torch.gru(x, chunk_sizes, start[0], weights, True, 1, 0.0, rnn.training, False)
            state = [h]
        outs.append(out)
        ended.append(tuple(part[:, carried:rows] for part in state))
    # the rows that end last are the longest: first in sorted order
    final = [torch.cat(parts, dim=1)[0] for parts in zip(*ended[::-1])]
    return torch.cat(outs), final[0], final[1] if lstm else None
