"""The vllm backend, where vLLM and a GPU exist (GPU nodes; never in CPU CI)."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import TEACHER_REPLY, run_cli

from distill.io import read_shards

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@needs_vllm
@pytest.mark.skipif(not has_cuda(), reason="no CUDA GPU")
def test_vllm_backend_writes_n_times_k_rows(tmp_path, parrot_model):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(f'{{"id": "v{i}", "problem": "What is {i} + 2?"}}\n' for i in range(4)))
    res = run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "vllm", "--model",
                  parrot_model, "-k", "3", "--max-tokens", "64", "--set", "max_model_len=1024")
    assert res.returncode == 0, res.stderr
    rows = read_shards(tmp_path / "gen" / "traces").to_pylist()
    assert len(rows) == 12 and {r["finish_reason"] for r in rows} == {"stop"}
    assert all(r["completion"] == TEACHER_REPLY for r in rows)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed: nothing is missing")
def test_vllm_backend_without_vllm_says_what_to_do(tmp_path, parrot_model):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "problem": "x"}\n')
    res = run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "vllm", "--model",
                  parrot_model)
    assert res.returncode == 2 and "needs vLLM" in res.stderr and "--backend openai" in res.stderr
