"""runtime: device choice, autocast, and the bound on oneDNN's kernel cache (bf16 memory)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from seqlab.core.errors import ConfigError
from seqlab.model.runtime import ONEDNN_CACHE_CAPACITY, autocast, limit_kernel_cache, pick_device

VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"

# One bf16 matmul shape more than the bound, then the first again: each call builds (or finds) one oneDNN kernel.
REVISIT = f"""
from seqlab.model.runtime import limit_kernel_cache
limit_kernel_cache()
import torch
w = torch.ones(16, 16, dtype=torch.bfloat16)
for rows in [*range(32, 32 + {ONEDNN_CACHE_CAPACITY} + 1), 32]:
    torch.ones(rows, 16, dtype=torch.bfloat16) @ w
"""


def kernel_creations(capacity: str | None) -> list[str]:
    """oneDNN's own account (ONEDNN_VERBOSE) of each matmul kernel it built or found in its cache,
    with ONEDNN_PRIMITIVE_CACHE_CAPACITY set to ``capacity`` beforehand, or unset (None)."""
    env = {k: v for k, v in os.environ.items() if k != VARIABLE} | {"ONEDNN_VERBOSE": "all"}
    if capacity is not None:
        env[VARIABLE] = capacity
    out = subprocess.run([sys.executable, "-c", REVISIT], env=env, capture_output=True, text=True, check=True).stdout
    return [line.split(",")[3] for line in out.splitlines() if ",create:" in line and ",matmul," in line]


def test_limit_kernel_cache_sets_the_bound_unless_the_user_did(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    limit_kernel_cache()
    assert os.environ[VARIABLE] == str(ONEDNN_CACHE_CAPACITY)
    monkeypatch.setenv(VARIABLE, "7")
    limit_kernel_cache()
    assert os.environ[VARIABLE] == "7"


def test_onednn_evicts_kernels_beyond_the_bound():
    bounded = kernel_creations(None)
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        # Without AVX-512 (AMD Zen 1, ...) bf16 matmuls run outside oneDNN: no kernel cache grows, none to bound.
        assert bounded == []
        return
    assert len(bounded) == ONEDNN_CACHE_CAPACITY + 2
    assert bounded[-1] == "create:cache_miss"  # the first shape's kernel was evicted: the bound is in force
    unbounded = kernel_creations("1024")
    assert unbounded[-1] == "create:cache_hit"  # the user's setting wins, and a large cache keeps it


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device: 'cuda'"):
            pick_device("cuda")


def test_autocast_on_cpu_only_when_asked():
    x = torch.ones(4, 4)
    with autocast(torch.device("cpu"), cpu_bf16=True):
        assert (x @ x).dtype == torch.bfloat16
    with autocast(torch.device("cpu")):
        assert (x @ x).dtype == torch.float32
