"""Where a model comes from, the same in every stage: a hub id, a local directory, or a `.gguf` file; and the
one-line errors for models that cannot be loaded as given.

    local_model("runs/sft/final")            # -> "runs/sft/final" (hub ids and directories pass through)
    local_model("~/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    # -> "~/.cache/distill/gguf/3f1c.../" : the file dequantised once into a transformers directory (weights,
    #    tokenizer and chat template from the file), which transformers, vLLM and lm-eval all load

People keep local models as GGUF (llama.cpp, Ollama); training and vLLM's CPU build need plain weights, so a GGUF
file is converted once, cached by its content hash under $DISTILL_CACHE (default ~/.cache/distill).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from distill.core.errors import DistillError
from distill.core.log import get_logger

SOURCE_FILE = "distill_source.json"  # in a converted directory: which file it came from


def is_gguf(model: str | os.PathLike) -> bool:
    return str(model).lower().endswith(".gguf")


def cache_dir() -> Path:
    root = os.environ.get("DISTILL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "distill"
    return Path(root).expanduser()


def local_model(model: str) -> str:
    """What loaders get for `model`: a GGUF file's converted directory; anything else unchanged."""
    if not is_gguf(model):
        return model
    path = Path(model).expanduser()
    if not path.is_file():
        raise DistillError(f"GGUF file '{model}' not found; pass the path of a .gguf model file")
    digest = file_digest(path)
    target = cache_dir() / "gguf" / digest
    if not (target / SOURCE_FILE).is_file():
        convert_gguf(path, target, digest)
    return str(target)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()[:24]


def convert_gguf(path: Path, target: Path, digest: str) -> None:
    """Dequantise `path` into a transformers directory at `target` (written aside, then renamed: a killed
    conversion leaves nothing half-made)."""
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log = get_logger()
    log.info(f"converting {path.name} to a transformers directory (once; cached in {target.parent})")
    start = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except (ValueError, KeyError, RuntimeError, NotImplementedError) as err:
        raise gguf_error(path, err) from None
    # A GGUF-loaded model refuses save_pretrained (its quantisation config says GGUF); the same weights in a
    # fresh model of the same config save as plain safetensors.
    config = loaded.config
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / SOURCE_FILE).write_text(json.dumps({"gguf_file": str(path.resolve()), "sha256_24": digest}, indent=1))
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.rename(target)
    params = sum(p.numel() for p in fresh.parameters())
    log.info(f"{path.name}: {type(fresh).__name__}, {params / 1e6:.1f}M parameters, converted in "
             f"{time.monotonic() - start:.0f} s")


def gguf_error(path: Path, err: BaseException) -> DistillError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return DistillError(f"transformers cannot read the GGUF file {path} ({first}); convert it to a transformers "
                        "model directory with the tool that made it, or use a model of a supported architecture "
                        "and quantisation")


def remote_code_error(err: BaseException, model: str) -> DistillError | None:
    """The one-line error for a model that ships its own Python, when the user did not allow it."""
    text = str(err)
    if "trust_remote_code" in text or "custom code" in text:
        return DistillError(f"model '{model}' needs its own Python code to load (auto_map in its config); pass "
                            "--trust-remote-code (recipe: model.trust_remote_code: true) if you trust its source")
    return None
