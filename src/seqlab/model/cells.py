"""The arithmetic of nn.LSTMCell and nn.GRUCell after their matmuls, for recurrences that compute those products themselves."""

from __future__ import annotations

import torch


def lstm_update(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """gates: (..., 4H) W_ih x + W_hh h + biases, in nn.LSTMCell's order i, f, g, o; cell: (..., H).
    Returns the next (h, c)."""
    i, f, g, o = gates.chunk(4, dim=-1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), cell


def gru_update(from_input: torch.Tensor, from_hidden: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """from_input: (..., 3H) W_ih x + b_ih; from_hidden: (..., 3H) W_hh h + b_hh, in nn.GRUCell's
    order r, z, n; hidden: (..., H). Returns the next h."""
    x_r, x_z, x_n = from_input.chunk(3, dim=-1)
    h_r, h_z, h_n = from_hidden.chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    return (1 - z) * torch.tanh(x_n + r * h_n) + z * hidden
