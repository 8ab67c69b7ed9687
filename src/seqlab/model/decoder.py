"""The recurrent decoder (LSTM or GRU) with input feeding (Luong et al. 2015) over attention."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from seqlab.model.attention import build_attention
from seqlab.model.dropout import Dropout
from seqlab.model.products import ModuleProducts, TapedProducts, sequence_weights
from seqlab.model.state import DecoderState
from seqlab.model.tape import WeightGradTape

CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}


def _stack(layers: list[torch.Tensor]) -> torch.Tensor:
    """(L, N, H) from L layers' (N, H); one layer is a view, not a copy (two per step otherwise)."""
    return layers[0].unsqueeze(0) if len(layers) == 1 else torch.stack(layers)


@dataclass(frozen=True)
class StepResult:
    """feed: (N, H) attentional vector; state: next state; weights: (N, S) attention;
    context: (N, D) attended encoder states, None when the state has memory_out;
    hidden: (N, H) top-layer RNN output."""

    feed: torch.Tensor
    state: DecoderState
    weights: torch.Tensor
    context: torch.Tensor | None
    hidden: torch.Tensor


@dataclass(frozen=True)
class _Sequence:
    """A teacher-forced sequence ready to step: how its steps multiply, its start state, and
    inputs: (B, T, E) embeddings, or (B, T, G) their first-layer products for taped steps."""

    products: ModuleProducts | TapedProducts
    state: DecoderState
    inputs: torch.Tensor


class Decoder(nn.Module):
    def __init__(
        self,
        *,
        embed_dim: int,
        hidden_dim: int,
        memory_dim: int,
        attention_dim: int,
        layers: int,
        dropout: float,
        rnn_type: str = "lstm",
        attention: str = "bahdanau",
        input_feeding: bool = True,
        coverage: bool = False,
        taped: bool = True,
    ) -> None:
        """taped: training's steps make their products through :class:`TapedProducts`
        (False: through the modules, as search does; slower, the tests' reference)."""
        super().__init__()
        first = embed_dim + hidden_dim if input_feeding else embed_dim
        self.cells = nn.ModuleList(CELLS[rnn_type](first if i == 0 else hidden_dim, hidden_dim) for i in range(layers))
        self.attention = build_attention(
            attention, query_dim=hidden_dim, key_dim=memory_dim, attention_dim=attention_dim, coverage=coverage
        )
        self.combine = nn.Linear(hidden_dim + memory_dim, hidden_dim, bias=False)
        self.dropout = Dropout(dropout)
        self.hidden_dim = hidden_dim
        self.input_feeding = input_feeding
        self.lstm = rnn_type == "lstm"
        self.taped = taped

    def teacher_force(self, embedded: torch.Tensor, state: DecoderState) -> list[StepResult]:
        """Every target position in turn. embedded: (B, T, E) embeddings of BOS + target[:-1].

        With gradients enabled (and ``taped``) the steps make their products
        through :class:`TapedProducts`: the same arithmetic arranged for a
        known sequence, each weight's gradient computed once for it.
        """
        if self.taped and torch.is_grad_enabled():
            sequence = self._taped_sequence(embedded, state)
        else:
            sequence = _Sequence(products=self._module_products(), state=state, inputs=embedded)
        state, steps = sequence.state, []
        for x in sequence.inputs.unbind(1):
            steps.append(self._step(x, state, sequence.products))
            state = steps[-1].state
        return steps

    def step(self, embedded: torch.Tensor, state: DecoderState) -> StepResult:
        """One target position. embedded: (N, E) previous token's embedding."""
        return self._step(embedded, state, self._module_products())

    def _step(self, first: torch.Tensor, state: DecoderState, products: ModuleProducts | TapedProducts) -> StepResult:
        """The one home of a step's order, whichever products it makes; for N state rows.
        first: what layer 0 reads besides the feed, (N, E) the embedding, or for
        :class:`TapedProducts` (N, G) its product with the layer's weights plus biases."""
        x = state.feed if self.input_feeding else None
        hiddens, cells = [], []
        for layer in range(len(self.cells)):
            cell = state.cell[layer] if self.lstm else None
            h, c = products.recurrent(layer, x, first=first, hidden=state.hidden[layer], cell=cell)
            hiddens.append(h)
            cells.append(c)
            if layer + 1 < len(self.cells):  # the top layer's output goes to attention undropped
                x = self.dropout(h)
        query = products.query(h)
        values = state.memory if state.memory_out is None else state.memory_out
        attended = self.attention.attend(
            query.value, state.proj_keys, values, state.src_mask, state.coverage, tape=products.tape
        )
        feed = products.combine_feed(h, query, context=attended.context, state=state)
        context = attended.context if state.memory_out is None else None
        next_state = self._next_state(state, hiddens, cells, feed, attended.weights)
        return StepResult(feed=feed, state=next_state, weights=attended.weights, context=context, hidden=h)

    def _module_products(self) -> ModuleProducts:
        return ModuleProducts(cells=self.cells, attention=self.attention, combine=self.combine)

    def _taped_sequence(self, embedded: torch.Tensor, state: DecoderState) -> _Sequence:
        """A sequence's taped products, its start state anchored to their tape, and as inputs
        (B, T, G) the first layer's product with every embedding plus its biases."""
        weights = sequence_weights(
            self.cells, attention=self.attention, combine=self.combine, embed_dim=embedded.size(-1),
            copy_context=state.memory_out is None,
        )
        values = state.memory if state.memory_out is None else state.memory_out
        tape = WeightGradTape(weights.taped(), values=values)
        # the start state and the inputs: every taped product descends from one of them
        hidden, feed, embedded = tape.anchor(state.hidden, state.feed, embedded)
        first = self.cells[0]
        bias = first.bias_ih + first.bias_hh if self.lstm else first.bias_ih
        # in the parameters' dtype: under autocast the gates then sum in fp32 and the cell state stays fp32
        inputs = nn.functional.linear(embedded, first.weight_ih[:, : embedded.size(-1)], bias).to(bias.dtype)
        products = TapedProducts(weights, tape)
        return _Sequence(products=products, state=replace(state, hidden=hidden, feed=feed), inputs=inputs)

    def _next_state(
        self, state: DecoderState, hiddens: list[torch.Tensor], cells: list[torch.Tensor], feed: torch.Tensor,
        weights: torch.Tensor,
    ) -> DecoderState:
        return replace(
            state,
            hidden=_stack(hiddens),
            cell=_stack(cells) if self.lstm else None,
            feed=feed,
            coverage=None if state.coverage is None else state.coverage + weights.to(state.coverage.dtype),
        )

    def project_memory(self, memory: torch.Tensor) -> torch.Tensor:
        """memory: (n, S, D) -> (n, S, H) through the combine layer's context half (DecoderState.memory_out)."""
        return torch.nn.functional.linear(memory, self.combine.weight[:, self.hidden_dim :])
