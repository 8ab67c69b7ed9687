"""The recurrent decoder (LSTM or GRU) with input feeding (Luong et al. 2015) over attention."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from seqlab.attention import build_attention
from seqlab.dropout import Dropout
from seqlab.steplinear import WeightGradTape, apply_linear

CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}


def _rows(tensor: torch.Tensor | None, index: torch.Tensor, dim: int = 0) -> torch.Tensor | None:
    return None if tensor is None else tensor.index_select(dim, index)


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

        With gradients enabled the per-step linear layers and the attention's
        context product go through a :class:`WeightGradTape`, so backward
        computes the gradient of each weight and of the encoder states once for
        the whole sequence instead of once per position.
        """
        tape = WeightGradTape(self._step_weights(), values=state.memory) if torch.is_grad_enabled() else None
        if tape is not None:
            hidden, embedded = tape.anchor(state.hidden, embedded)
            state = replace(state, hidden=hidden)
        steps = []
        for x in embedded.unbind(1):
            steps.append(self.step(x, state, tape=tape))
            state = steps[-1].state
        return steps

    def step(self, embedded: torch.Tensor, state: DecoderState, *, tape: WeightGradTape | None = None) -> StepResult:
        """One target position. embedded: (N, E) previous token's embedding."""
        x = torch.cat((embedded, state.feed), dim=-1) if self.input_feeding else embedded
        hiddens, cells = [], []
        for layer, cell in enumerate(self.cells):
            if self.lstm:
                h, c = self._lstm(cell, x, state.hidden[layer], state.cell[layer], tape)
                cells.append(c)
            else:
                h = self._gru(cell, x, state.hidden[layer], tape)
            hiddens.append(h)
            if layer + 1 < len(self.cells):  # the top layer's output goes to attention undropped
                x = self.dropout(h)
        if state.memory_out is None:
            attended = self.attention(h, state.proj_keys, state.memory, state.src_mask, state.coverage, tape=tape)
            context = attended.context
            feed = torch.tanh(apply_linear(self.combine, torch.cat((h, context), dim=-1), tape))
        else:  # combine([h; a @ memory]) = W_h h + a @ (memory W_c^T): the second term is attention's output
            attended = self.attention(h, state.proj_keys, state.memory_out, state.src_mask, state.coverage)
            context = None
            feed = torch.tanh(torch.addmm(attended.context, h, self.combine.weight[:, : self.hidden_dim].t()))
        next_state = replace(
            state,
            hidden=torch.stack(hiddens),
            cell=torch.stack(cells) if self.lstm else None,
            feed=feed,
            coverage=None if state.coverage is None else state.coverage + attended.weights.to(state.coverage.dtype),
        )
        return StepResult(feed=feed, state=next_state, weights=attended.weights, context=context, hidden=h)

    def project_memory(self, memory: torch.Tensor) -> torch.Tensor:
        """memory: (n, S, D) -> (n, S, H) through the combine layer's context half (DecoderState.memory_out)."""
        return torch.nn.functional.linear(memory, self.combine.weight[:, self.hidden_dim :])

    def _step_weights(self) -> list[torch.Tensor]:
        """The weights applied once per step, whose gradients a tape can defer."""
        weights = [w for cell in self.cells for w in (cell.weight_ih, cell.weight_hh)]
        weights += self.attention.step_weights()
        return [*weights, self.combine.weight]

    @staticmethod
    def _lstm(
        cell: nn.LSTMCell, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, tape: WeightGradTape | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """nn.LSTMCell's arithmetic (gates in its order i, f, g, o), its matmuls through ``tape``."""
        if tape is None:
            return cell(x, (h, c))
        gates = tape.linear(cell.weight_ih, x, cell.bias_ih) + tape.linear(cell.weight_hh, h, cell.bias_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    @staticmethod
    def _gru(cell: nn.GRUCell, x: torch.Tensor, h: torch.Tensor, tape: WeightGradTape | None) -> torch.Tensor:
        """nn.GRUCell's arithmetic (gates in its order r, z, n), its matmuls through ``tape``."""
        if tape is None:
            return cell(x, h)
        x_r, x_z, x_n = tape.linear(cell.weight_ih, x, cell.bias_ih).chunk(3, dim=-1)
        h_r, h_z, h_n = tape.linear(cell.weight_hh, h, cell.bias_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h
