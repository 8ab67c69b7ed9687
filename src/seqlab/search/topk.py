"""The k largest entries of each row of a wide matrix, faster than ``torch.topk`` for small k.

Beam search ranks each row of (N, V) next-token scores every step, and on CPU
``torch.topk`` over thousands of columns can cost more than the log-softmax
that produced them (figures in the README's "How search works"). Splitting
each row into ``groups`` stripes of equal width, column j's group is
{j, j + width, j + 2 width, ...}; a group whose maximum is not among the k
largest group maxima holds none of the row's k largest entries (k other
groups each hold a larger one). So a vectorised max over the stripes, a top-k
over the group maxima (recursively), and a top-k over the k x groups entries
of the chosen groups give the same result.
"""

from __future__ import annotations

import torch

from seqlab.search.scores import NEG_INF
from seqlab.tokenizer import PAD_ID

# More groups make the max over stripes shorter but the second top-k wider; the README gives
# the sizes this was tuned at.
GROUPS = 8
SMALL = 128  # at or below this many columns torch.topk is used directly


def row_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores.topk(k, dim=1)``: values and column indices (N, k), largest first.

    scores: (N, V). Equal to torch.topk except for the order among exactly equal
    values, which neither defines.
    """
    rows, columns = scores.shape
    if columns <= SMALL or columns < 4 * k * GROUPS:
        return scores.topk(k, dim=1)
    # Groups over the first GROUPS * width columns, a view; the few left over (< GROUPS) are
    # candidates outright, which is cheaper than padding (a copy of every row).
    width = columns // GROUPS
    striped = scores[:, : GROUPS * width].view(rows, GROUPS, width)
    group_max = striped.amax(dim=1)  # (N, width): max of each group
    _, groups = row_topk(group_max, k)  # (N, k) the groups that hold the k largest of the striped columns
    offsets = torch.arange(GROUPS, device=scores.device).view(1, -1, 1) * width
    columns_kept = (groups.unsqueeze(1) + offsets).view(rows, -1)  # (N, GROUPS * k)
    if columns > GROUPS * width:
        left_over = torch.arange(GROUPS * width, columns, device=scores.device).expand(rows, -1)
        columns_kept = torch.cat((columns_kept, left_over), dim=1)
    values, at = scores.gather(1, columns_kept).topk(k, dim=1)
    return values, columns_kept.gather(1, at)


def top_candidates(scores: torch.Tensor, log_probs: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``count`` best one-token extensions of each sentence's W beams.

    scores: (n, W) beam log-probabilities; log_probs: (n*W, V) next-token ones.
    Returns (n, count) scores, tokens and parent beams (0..W-1), best first;
    when W*V < count the missing places are -inf extensions of beam 0 by PAD.

    A sentence's best ``count`` are among the union of each beam's own best
    ``count``, so the beams are ranked first (one pass over V per row) and the
    sentence's W x count survivors second, instead of adding the beam scores to,
    and ranking, all W x V extensions.
    """
    n, width = scores.shape
    per_row = min(count, log_probs.size(-1))
    row_scores, row_tokens = row_topk(log_probs, per_row)  # (n*W, c), best first
    candidates = (scores.view(-1, 1) + row_scores).view(n, width * per_row)
    tokens = row_tokens.view(n, width * per_row)
    if width * per_row < count:
        dead = count - width * per_row
        candidates = torch.cat((candidates, candidates.new_full((n, dead), NEG_INF)), dim=1)
        # PAD, never EOS: select_alive relies on at most one EOS candidate per beam
        tokens = torch.cat((tokens, tokens.new_full((n, dead), PAD_ID)), dim=1)
    top_scores, top_ids = candidates.topk(count, dim=1)
    parents = torch.where(top_ids < width * per_row, top_ids // per_row, 0)
    return top_scores, tokens.gather(1, top_ids), parents
