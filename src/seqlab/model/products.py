"""How a decoder step multiplies by its weights: as its modules do, or fused through a weight-gradient tape.

:meth:`Decoder._step <seqlab.model.decoder.Decoder._step>` is the one place
the step's order is written (layers, dropout, input feeding, attention,
combine); it asks a products object for each product with a weight, and the
two kinds here answer the same question with the same arithmetic, arranged
differently:

- :class:`ModuleProducts` calls the modules (``nn.LSTMCell``, the attention's
  query weight, the combine layer) one step at a time: search, validation, and
  the reference the tests hold training to.
- :class:`TapedProducts` serves a known sequence in training: the first layer's
  product with the embeddings is one (B x T)-row matmul before the loop,
  products of one input with several weights are one product with the weights
  side by side (an LSTM's [input; h] with [W_ih W_hh]; the attention's query
  and the combine layer's h half), and every per-step product goes through a
  :class:`WeightGradTape`, so backward computes each weight's gradient once for
  the whole sequence. Per-step products of a batch's rows run far below the
  CPU's matmul peak; fewer and wider ones run closer to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqlab.model.attention import Attention
from seqlab.model.cells import gru_update, lstm_update
from seqlab.model.state import DecoderState
from seqlab.model.tape import WeightGradTape


@dataclass(frozen=True)
class Query:
    """value: (N, A) the top layer's h through the attention's query weight (h itself without one);
    head: (N, H) the combine layer's h half applied to h when that product was fused with the
    query's, else None."""

    value: torch.Tensor
    head: torch.Tensor | None


class ModuleProducts:
    """Each product as the decoder's modules compute it, one step at a time."""

    tape = None

    def __init__(self, *, cells: nn.ModuleList, attention: Attention, combine: nn.Linear) -> None:
        self.cells, self.attention, self.combine = cells, attention, combine

    def recurrent(
        self,
        layer: int,
        x: torch.Tensor | None,
        *,
        first: torch.Tensor,
        hidden: torch.Tensor,
        cell: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One layer's next (h, c) (c None for a GRU). x: (N, I) the layer's input besides the
        embedding (the feed at layer 0, None without input feeding); first: (N, E) the
        embedding, read by layer 0; hidden, cell: (N, H)."""
        if layer == 0:
            x = first if x is None else torch.cat((first, x), dim=-1)
        if cell is None:
            return self.cells[layer](x, hidden), None
        return self.cells[layer](x, (hidden, cell))

    def query(self, h: torch.Tensor) -> Query:
        """h: (N, H) the top layer's output."""
        weight = self.attention.query_weight()
        return Query(value=h if weight is None else nn.functional.linear(h, weight), head=None)

    def combine_feed(
        self, h: torch.Tensor, query: Query, *, context: torch.Tensor, state: DecoderState
    ) -> torch.Tensor:
        """(N, H) tanh(W [h; context]): context is (N, D) attended memory, or with
        ``state.memory_out`` (N, H) attended memory already through the context half."""
        if state.memory_out is None:
            return torch.tanh(self.combine(torch.cat((h, context), dim=-1)))
        # combine([h; a @ memory]) = W_h h + a @ (memory W_c^T): the second term is attention's output
        return torch.tanh(torch.addmm(context, h, self.combine.weight[:, : h.size(-1)].t()))


@dataclass(frozen=True)
class SequenceWeights:
    """A decoder's per-step weights for one teacher-forced sequence, built from its parameters.

    Per layer: recurrent: (G, own + H) for an LSTM, [W_ih without the embedding
    columns, W_hh] side by side, or W_hh for a GRU; inputs: the GRU's W_ih
    part applied to the layer's non-embedding input (None for an LSTM, or when
    there is none); biases: added to the products above the first layer (the
    first layer's are in its precomputed embedding product); gru_biases: each
    GRU layer's b_hh (its reset gate scales W_hh h + b_hh), None for an LSTM.
    query: the attention's query weight or None; combine: the whole combine
    weight when the context itself is needed (copying), else None;
    query_combine: the query weight and the combine layer's h half stacked,
    (A + H, H), or the h half alone.
    """

    recurrent: list[torch.Tensor]
    inputs: list[torch.Tensor | None]
    biases: list[torch.Tensor | None]
    gru_biases: list[torch.Tensor] | None
    query: torch.Tensor | None
    combine: torch.Tensor | None
    query_combine: torch.Tensor | None

    def taped(self) -> list[torch.Tensor]:
        """Every weight a step multiplies through the tape."""
        listed = [*self.recurrent, *self.inputs, self.combine, self.query_combine]
        if self.combine is not None:
            listed.append(self.query)
        return [w for w in listed if w is not None]


def sequence_weights(
    cells: nn.ModuleList, *, attention: Attention, combine: nn.Linear, embed_dim: int, copy_context: bool
) -> SequenceWeights:
    """The per-step weights of one teacher-forced sequence, side by side where they share an input."""
    lstm = isinstance(cells[0], nn.LSTMCell)
    recurrent, inputs, biases = [], [], []
    for layer, cell in enumerate(cells):
        own = cell.weight_ih[:, embed_dim:] if layer == 0 else cell.weight_ih  # what is not the embedding
        own = own if own.size(1) else None
        if lstm:  # one product of [own input; h] with [W_own W_hh]
            recurrent.append(cell.weight_hh if own is None else torch.cat((own, cell.weight_hh), dim=1))
            inputs.append(None)
            biases.append(None if layer == 0 else cell.bias_ih + cell.bias_hh)
        else:  # a GRU needs W_hh h apart (its reset gate scales it)
            recurrent.append(cell.weight_hh)
            inputs.append(own)
            biases.append(None if layer == 0 else cell.bias_ih)
    query = attention.query_weight()
    if copy_context:
        combined, query_combine = combine.weight, query
    else:
        h_half = combine.weight[:, : cells[0].hidden_size]
        combined, query_combine = None, h_half if query is None else torch.cat((query, h_half))
    return SequenceWeights(
        recurrent=recurrent, inputs=inputs, biases=biases, gru_biases=None if lstm else [c.bias_hh for c in cells],
        query=query, combine=combined, query_combine=query_combine,
    )


class TapedProducts:
    """Each product through one sequence's fused weights and its tape."""

    def __init__(self, weights: SequenceWeights, tape: WeightGradTape) -> None:
        self.weights, self.tape = weights, tape

    def recurrent(
        self,
        layer: int,
        x: torch.Tensor | None,
        *,
        first: torch.Tensor,
        hidden: torch.Tensor,
        cell: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`ModuleProducts.recurrent`, but first: (N, G) the first layer's embedding product
        plus biases (G = 4H for an LSTM, 3H for a GRU)."""
        w = self.weights
        extra = first if layer == 0 else w.biases[layer]
        if w.gru_biases is None:
            both = hidden if x is None else torch.cat((x, hidden), dim=-1)
            return lstm_update(self.tape.linear(w.recurrent[layer], both, extra), cell)
        from_input = extra if x is None else self.tape.linear(w.inputs[layer], x, extra)
        return gru_update(from_input, self.tape.linear(w.recurrent[layer], hidden, w.gru_biases[layer]), hidden), None

    def query(self, h: torch.Tensor) -> Query:
        w = self.weights
        if w.combine is not None:  # copying reads the context itself: the combine layer runs whole
            return Query(value=h if w.query is None else self.tape.linear(w.query, h), head=None)
        # combine([h; a @ memory]) = W_h h + a @ memory_out; W_h h shares its product with the query's
        both = self.tape.linear(w.query_combine, h)
        if w.query is None:
            return Query(value=h, head=both)
        query, head = both.split([w.query.size(0), h.size(-1)], -1)
        return Query(value=query, head=head)

    def combine_feed(
        self, h: torch.Tensor, query: Query, *, context: torch.Tensor, state: DecoderState
    ) -> torch.Tensor:
        if query.head is None:
            return torch.tanh(self.tape.linear(self.weights.combine, torch.cat((h, context), dim=-1)))
        return torch.tanh(query.head + context)
