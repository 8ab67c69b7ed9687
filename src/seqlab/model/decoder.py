"""The recurrent decoder (LSTM or GRU) with input feeding (Luong et al. 2015) over attention."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from seqlab.model.attention import build_attention
from seqlab.model.cells import gru_update, lstm_update
from seqlab.model.dropout import Dropout
from seqlab.model.tape import WeightGradTape

CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}


def _rows(tensor: torch.Tensor | None, index: torch.Tensor, dim: int = 0) -> torch.Tensor | None:
    return None if tensor is None else tensor.index_select(dim, index)


def _stack(layers: list[torch.Tensor]) -> torch.Tensor:
    """(L, N, H) from L layers' (N, H); one layer is a view, not a copy (two per step otherwise)."""
    return layers[0].unsqueeze(0) if len(layers) == 1 else torch.stack(layers)


def shared_sources(owner: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Encoder rows for state rows that read encoder row ``owner`` (N,), shared where possible.

    When ``owner`` is a list of encoder rows each repeated the same W times in
    a run (the K beams of each sentence), returns those rows (N / W,) and W:
    the runs can share one copy. Otherwise every state row gets its own: (owner, 1).
    """
    if owner.numel() == 0:
        return owner, 1
    starts = torch.cat((owner.new_ones(1, dtype=torch.bool), owner[1:] != owner[:-1])).nonzero().view(-1)
    width = owner.numel() // starts.numel()
    if width > 1 and starts.numel() * width == owner.numel():
        if torch.equal(starts, torch.arange(0, owner.numel(), width, device=owner.device)):
            return owner[starts], width
    return owner, 1


@dataclass(frozen=True)
class DecoderState:
    """Everything one decoding step needs, for N rows (sentences, or sentences x beams).

    The encoder-side fields have one row per source (n rows), shared by the
    ``rows_per_source`` = N / n consecutive state rows that decode it (the
    beams of a sentence), so beams neither copy nor carry them.

    hidden: (L, N, H) recurrent state; cell: (L, N, H) LSTM cells or None for a
    GRU; feed: (N, H) previous attentional vector (input feeding); memory:
    (n, S, D) encoder states; proj_keys: (n, S, A) attention keys, projected
    once; src_mask: (n, S) True on tokens; src_ids: (n, S) source ids (for
    copying); coverage: (N, S) attention summed so far, or None.

    memory_out: (n, S, H) the memory through the context half of the combine
    layer (:meth:`Decoder.project_memory`), or None. Search sets it: the
    combine layer then adds weights @ memory_out, one product per source,
    instead of multiplying every row's (D,) context by a (D, H) matrix at every
    step. Training leaves it None (its gradients go through the tape).
    """

    hidden: torch.Tensor
    cell: torch.Tensor | None
    feed: torch.Tensor
    memory: torch.Tensor
    proj_keys: torch.Tensor
    src_mask: torch.Tensor
    src_ids: torch.Tensor
    coverage: torch.Tensor | None = None
    rows_per_source: int = 1
    memory_out: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> DecoderState:
        """Rows ``index`` (drop finished sentences, expand to beams); the encoder-side fields follow."""
        sources, width = shared_sources(torch.div(index, self.rows_per_source, rounding_mode="floor"))
        return DecoderState(
            hidden=self.hidden.index_select(1, index),
            cell=_rows(self.cell, index, 1),
            feed=self.feed.index_select(0, index),
            memory=self.memory.index_select(0, sources),
            proj_keys=self.proj_keys.index_select(0, sources),
            src_mask=self.src_mask.index_select(0, sources),
            src_ids=self.src_ids.index_select(0, sources),
            coverage=_rows(self.coverage, index),
            rows_per_source=width,
            memory_out=_rows(self.memory_out, sources),
        )

    def reorder(self, index: torch.Tensor) -> DecoderState:
        """Reorder the per-hypothesis fields only; ``index`` must stay within each sentence's rows.

        The encoder-side fields are identical across a sentence's beams, so
        following beam back-pointers need not copy them.
        """
        return replace(
            self,
            hidden=self.hidden.index_select(1, index),
            cell=_rows(self.cell, index, 1),
            feed=self.feed.index_select(0, index),
            coverage=_rows(self.coverage, index),
        )

    def row_src_ids(self) -> torch.Tensor:
        """(N, S) source ids of each state row."""
        return self.src_ids.repeat_interleave(self.rows_per_source, dim=0)


@dataclass(frozen=True)
class _SequenceWeights:
    """A decoder's per-step weights for one teacher-forced sequence, built from its parameters.

    Per layer: recurrent: (G, own + H) for an LSTM, [W_ih without the embedding
    columns, W_hh] side by side, or W_hh for a GRU; inputs: the GRU's W_ih
    part applied to the layer's non-embedding input (None for an LSTM, or when
    there is none); biases: added to the products above the first layer (the
    first layer's are in its precomputed embedding product). query: the
    attention's query weight or None; combine: the whole combine weight when the
    context itself is needed (copying), else None; query_combine: the query
    weight and the combine layer's h half stacked, (A + H, H), or the h half alone.
    """

    recurrent: list[torch.Tensor]
    inputs: list[torch.Tensor | None]
    biases: list[torch.Tensor | None]
    query: torch.Tensor | None
    combine: torch.Tensor | None
    query_combine: torch.Tensor | None

    def taped(self) -> list[torch.Tensor]:
        """Every weight a step multiplies through the tape."""
        listed = [*self.recurrent, *self.inputs, self.combine, self.query_combine]
        if self.combine is not None:
            listed.append(self.query)
        return [w for w in listed if w is not None]


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
    ) -> None:
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

    def teacher_force(self, embedded: torch.Tensor, state: DecoderState) -> list[StepResult]:
        """Every target position in turn. embedded: (B, T, E) embeddings of BOS + target[:-1].

        With gradients enabled the steps run :meth:`_taped_step`, the arithmetic
        of :meth:`step` rearranged for a known sequence: the first layer's
        product with the embeddings is one (B x T)-row matmul before the loop,
        products of one input with several weights are one product with the
        weights side by side (an LSTM's [input; h] with [W_ih W_hh]; the
        attention's query and the combine layer's h half), and every per-step
        matmul goes through a :class:`WeightGradTape`, so backward computes
        each weight's gradient, and the encoder states', once for the whole
        sequence. Per-step products of 64 rows run far below the machine's
        matmul peak; fewer and wider ones run closer to it.
        """
        if not torch.is_grad_enabled():
            steps = []
            for x in embedded.unbind(1):
                steps.append(self.step(x, state))
                state = steps[-1].state
            return steps
        weights = self._sequence_weights(embedded.size(-1), copy_context=state.memory_out is None)
        values = state.memory if state.memory_out is None else state.memory_out
        tape = WeightGradTape(weights.taped(), values=values)
        # the start state and the inputs: every taped product descends from one of them
        hidden, feed, embedded = tape.anchor(state.hidden, state.feed, embedded)
        state = replace(state, hidden=hidden, feed=feed)
        first = self.cells[0]
        embed_part = first.weight_ih[:, : embedded.size(-1)]
        bias = first.bias_ih + first.bias_hh if self.lstm else first.bias_ih
        # in the parameters' dtype: under autocast the gates then sum in fp32 and the cell state stays fp32
        inputs = torch.nn.functional.linear(embedded, embed_part, bias).to(bias.dtype)
        steps = []
        for inputs in inputs.unbind(1):
            steps.append(self._taped_step(inputs, state, weights, tape))
            state = steps[-1].state
        return steps

    def _sequence_weights(self, embed_dim: int, *, copy_context: bool) -> _SequenceWeights:
        """The per-step weights of one teacher-forced sequence, side by side where they share an input."""
        recurrent, inputs, biases = [], [], []
        for layer, cell in enumerate(self.cells):
            own = cell.weight_ih[:, embed_dim:] if layer == 0 else cell.weight_ih  # what is not the embedding
            own = own if own.size(1) else None
            if self.lstm:  # one product of [own input; h] with [W_own W_hh]
                recurrent.append(cell.weight_hh if own is None else torch.cat((own, cell.weight_hh), dim=1))
                inputs.append(None)
                biases.append(None if layer == 0 else cell.bias_ih + cell.bias_hh)
            else:  # a GRU needs W_hh h apart (its reset gate scales it)
                recurrent.append(cell.weight_hh)
                inputs.append(own)
                biases.append(None if layer == 0 else cell.bias_ih)
        query = self.attention.query_weight()
        if copy_context:
            combine, query_combine = self.combine.weight, query
        else:
            h_half = self.combine.weight[:, : self.hidden_dim]
            combine, query_combine = None, h_half if query is None else torch.cat((query, h_half))
        return _SequenceWeights(
            recurrent=recurrent, inputs=inputs, biases=biases, query=query, combine=combine, query_combine=query_combine
        )

    def _taped_step(
        self, first_inputs: torch.Tensor, state: DecoderState, weights: _SequenceWeights, tape: WeightGradTape
    ) -> StepResult:
        """:meth:`step` through the sequence's fused weights. first_inputs: (B, G) the first layer's
        embedding product plus biases (G = 4H for an LSTM, 3H for a GRU)."""
        x = state.feed if self.input_feeding else None
        hiddens, cells = [], []
        for layer in range(len(self.cells)):
            h_prev = state.hidden[layer]
            extra = first_inputs if layer == 0 else weights.biases[layer]
            if self.lstm:
                both = h_prev if x is None else torch.cat((x, h_prev), dim=-1)
                h, c = lstm_update(tape.linear(weights.recurrent[layer], both, extra), state.cell[layer])
                cells.append(c)
            else:
                gi = extra if x is None else tape.linear(weights.inputs[layer], x, extra)
                h = gru_update(gi, tape.linear(weights.recurrent[layer], h_prev, self.cells[layer].bias_hh), h_prev)
            hiddens.append(h)
            x = self.dropout(h) if layer + 1 < len(self.cells) else None
        if weights.combine is not None:  # copying reads the context itself
            query = h if weights.query is None else tape.linear(weights.query, h)
            attended = self._attend(query, state, tape)
            context = attended.context
            feed = torch.tanh(tape.linear(weights.combine, torch.cat((h, context), dim=-1)))
        else:  # combine([h; a @ memory]) = W_h h + a @ memory_out; W_h h shares its product with the query's
            both = tape.linear(weights.query_combine, h)
            query, h_part = (h, both) if weights.query is None else both.split([weights.query.size(0), self.hidden_dim], -1)
            attended = self._attend(query, state, tape)
            context = None
            feed = torch.tanh(h_part + attended.context)
        return StepResult(feed=feed, state=self._next_state(state, hiddens, cells, feed, attended.weights),
                          weights=attended.weights, context=context, hidden=h)

    def _attend(self, query: torch.Tensor, state: DecoderState, tape: WeightGradTape):
        """Attention for a query already through its weight (when the attention has one)."""
        values = state.memory if state.memory_out is None else state.memory_out
        if self.attention.query_weight() is None:
            return self.attention(query, state.proj_keys, values, state.src_mask, state.coverage, tape=tape)
        return self.attention.attend(query, state.proj_keys, values, state.src_mask, state.coverage, tape=tape)

    def step(self, embedded: torch.Tensor, state: DecoderState) -> StepResult:
        """One target position. embedded: (N, E) previous token's embedding."""
        x = torch.cat((embedded, state.feed), dim=-1) if self.input_feeding else embedded
        hiddens, cells = [], []
        for layer, cell in enumerate(self.cells):
            if self.lstm:
                h, c = cell(x, (state.hidden[layer], state.cell[layer]))
                cells.append(c)
            else:
                h = cell(x, state.hidden[layer])
            hiddens.append(h)
            if layer + 1 < len(self.cells):  # the top layer's output goes to attention undropped
                x = self.dropout(h)
        if state.memory_out is None:
            attended = self.attention(h, state.proj_keys, state.memory, state.src_mask, state.coverage)
            context = attended.context
            feed = torch.tanh(self.combine(torch.cat((h, context), dim=-1)))
        else:  # combine([h; a @ memory]) = W_h h + a @ (memory W_c^T): the second term is attention's output
            attended = self.attention(h, state.proj_keys, state.memory_out, state.src_mask, state.coverage)
            context = None
            feed = torch.tanh(torch.addmm(attended.context, h, self.combine.weight[:, : self.hidden_dim].t()))
        next_state = self._next_state(state, hiddens, cells, feed, attended.weights)
        return StepResult(feed=feed, state=next_state, weights=attended.weights, context=context, hidden=h)

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
