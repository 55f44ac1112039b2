"""Shared fixtures: a tiny random Qwen2 model with the checked-in tokenizer, built once per test session.

Everything runs offline on CPU: the model is initialised from a config (no download) and the tokenizer is the
~14 KB file under tests/assets/tiny_tokenizer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
REPO = Path(__file__).parent.parent
SHARED_DATA = Path(os.environ.get("DISTILL_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISTILL_PROGRESS_INTERVAL", "1")


def build_tiny_model(path: Path, seed: int = 0, **overrides) -> Path:
    """A 2-layer Qwen2 with random weights, saved with tokenizer and generation config at `path`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config

    tok = AutoTokenizer.from_pretrained(ASSETS / "tiny_tokenizer")
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None, **overrides,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model") / "model")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "math500.jsonl").exists():
        pytest.fail(f"eval/prompt data not found at {SHARED_DATA}; set DISTILL_SHARED_DATA to the shared/data folder")
    return SHARED_DATA


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run the real `distill` command (same interpreter) and return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "distill", *map(str, args)], cwd=cwd or REPO, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )
