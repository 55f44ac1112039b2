"""The vllm backend where vLLM is missing (its real runs are in test_vllm.py)."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import run_cli


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed: nothing is missing")
def test_vllm_backend_without_vllm_says_what_to_do(tmp_path, parrot_model):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "problem": "x"}\n')
    res = run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "vllm", "--model",
                  parrot_model)
    assert res.returncode == 2 and "needs vLLM" in res.stderr and "--backend openai" in res.stderr
