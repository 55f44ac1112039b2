"""SFT throughput: distill's training path against plain TRL SFTTrainer (packed and padded), same shapes, same data.

    python benchmarks/sft_throughput.py --arch qwen2.5-1.5b --max-length 16384          # one H100
    python benchmarks/sft_throughput.py --arch qwen2.5-7b --max-length 32768 --lora 64 --variants ours
    python benchmarks/sft_throughput.py --arch tiny --max-length 512 --steps 4 --warmup-steps 1 --docs 48 --mean-len 150   # CPU smoke

Every variant trains a randomly initialised student of a real shape (no download) on the same synthetic
reasoning-length token sequences (lognormal lengths, mean 4,000 tokens; the first 5% of each document is a
prompt with label -100), each in its own process so that peak memory is its own. Printed per variant:
useful tokens per second, model-FLOPs utilisation (bf16 datasheet peak; FLOPs counted as in
../shared/bench/trl_sft_baseline.py), peak memory (GPU; on CPU the process's peak RSS), and the relative L2
error of the logits of the first batch exactly as the variant's collator feeds it, against running each of its
documents alone (a packed path that lets documents attend to each other shows up here).

Variants:
  ours              distill.sft: TRL's trainer, packed rows, distill_varlen attention (varlen flash attention on
                    CUDA), Liger when installed, gradient checkpointing unless --no-checkpointing (a share of
                    the layers with --checkpoint-layers), --compile
  trl-packed        plain SFTTrainer, packing=True (BFD, padding-free), SDPA
  trl-packed-liger  the same with use_liger_kernel=True
  trl-padded        plain SFTTrainer, packing=False, batch 2, SDPA
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ARCHS = {  # the R1 students' shapes (config.json of the bases), and a tiny one for CPU smoke runs
    "qwen2.5-1.5b": ("qwen2", dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                                   num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)),
    "qwen2.5-7b": ("qwen2", dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                                 num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)),
    "llama3.1-8b": ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                                  num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)),
    "tiny": ("qwen2", dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=32000, tie_word_embeddings=True)),
}
VARIANTS = ["ours", "trl-packed", "trl-packed-liger", "trl-padded"]
DEFAULT_VARIANTS = "ours,trl-packed,trl-padded"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="qwen2.5-1.5b", choices=ARCHS)
    p.add_argument("--max-length", type=int, default=16384, help="packed row length (padded: max document length)")
    p.add_argument("--batch", type=int, default=1, help="rows per step for the packed variants")
    p.add_argument("--padded-batch", type=int, default=2, help="rows per step for trl-padded")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup-steps", type=int, default=3, help="steps left out of the timing")
    p.add_argument("--docs", type=int, default=600)
    p.add_argument("--mean-len", type=int, default=4000)
    p.add_argument("--no-checkpointing", action="store_true", help="ours: no gradient checkpointing")
    p.add_argument("--compile", action="store_true", help="ours: torch.compile the model")
    p.add_argument("--checkpoint-layers", type=float, default=1.0,
                   help="ours: fraction of layers that recompute activations (selective checkpointing)")
    p.add_argument("--lora", type=int, default=0, help="ours: LoRA rank (0: full fine-tuning)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, from {', '.join(VARIANTS)}")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------- shared pieces


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def synthetic_dataset(a: argparse.Namespace, vocab: int):
    """Token documents with reasoning-like lengths; the first 5% of each is prompt (label -100)."""
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(0)
    sigma = 0.8
    lengths = np.clip(rng.lognormal(math.log(a.mean_len) - sigma**2 / 2, sigma, a.docs).astype(int), 64, a.max_length)
    ids = [rng.integers(10, vocab - 10, n).tolist() for n in lengths]
    labels = [[-100] * max(1, n // 20) + d[max(1, n // 20):] for d, n in zip(ids, lengths, strict=False)]
    return Dataset.from_dict({"input_ids": ids, "labels": labels})


def stand_in_tokenizer():
    """The data are token ids already; the trainer only needs pad and EOS ids."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def common_args(a: argparse.Namespace, out: str) -> dict:
    on_gpu = device() == "cuda"
    return dict(output_dir=out, max_steps=a.steps, learning_rate=1e-5, gradient_accumulation_steps=1,
                bf16=on_gpu, use_cpu=not on_gpu, max_length=a.max_length, report_to="none", logging_steps=10**6,
                save_strategy="no", dataloader_num_workers=2 if on_gpu else 0, seed=0, shuffle_dataset=True,
                gradient_checkpointing_kwargs={"use_reentrant": False})


def logit_error(model, batch: dict) -> float:
    """Relative L2 error of the logits of `batch` (as collated) against each document run alone, computed in
    chunks of positions so a 32K x 152K-vocabulary row never materialises."""
    import torch

    from distill.sft.trainer import document_lengths

    model.eval()
    inputs = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in batch.items() if k != "labels"}
    lengths = document_lengths(batch)
    head, backbone = model.get_output_embeddings(), model.get_decoder()
    diff = ref = 0.0
    with torch.no_grad():
        hidden = backbone(**inputs, use_cache=False).last_hidden_state.flatten(0, 1)
        mask = inputs.get("attention_mask")
        keep = mask.flatten().bool() if mask is not None else torch.ones(len(hidden), dtype=torch.bool, device=hidden.device)
        hidden = hidden[keep]
        flat_ids = inputs["input_ids"].flatten()[keep]
        start = 0
        for n in lengths:
            alone = backbone(input_ids=flat_ids[None, start:start + n], use_cache=False).last_hidden_state[0]
            for s in range(0, n, 2048):
                a_logits = head(alone[s:s + 2048]).float()
                p_logits = head(hidden[start + s:start + min(n, s + 2048)]).float()
                diff += (p_logits - a_logits).pow(2).sum().item()
                ref += a_logits.pow(2).sum().item()
            start += n
    model.train()
    return math.sqrt(diff / max(ref, 1e-30))


class StepClock:
    """Wall time, tokens and FLOPs at the start of every optimizer step (tokens and FLOPs counted by distill's
    Meter, the way the baseline counts them)."""

    def __init__(self, meter):
        self.meter, self.marks = meter, []

    def mark(self) -> None:
        sync()
        self.marks.append((time.perf_counter(), self.meter.tokens, self.meter.flops))

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Cb(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                clock.mark()

        return Cb()

    def rates(self, warmup: int) -> tuple[float, float, int]:
        """(tokens/s, FLOP/s, steps timed) from the start of step `warmup` to the last mark."""
        w = min(warmup, len(self.marks) - 2)
        (t0, n0, f0), (t1, n1, f1) = self.marks[w], self.marks[-1]
        return (n1 - n0) / (t1 - t0), (f1 - f0) / (t1 - t0), len(self.marks) - 1 - w


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------- one variant (in its own process)


def build_ours(a: argparse.Namespace, ds, tok, out: str):
    from distill.sft.recipe import SFT_DEFAULTS, DatasetSpec, LoraSpec, ModelSpec, SFTRecipe
    from distill.sft.run import adapt_to_device, build_trainer, load_model, sft_config

    model_type, dims = ARCHS[a.arch]
    spec = ModelSpec(name=model_type, init="from_config", config={**dims, "max_position_embeddings": max(32768, a.max_length)},
                     dtype="bfloat16" if device() == "cuda" else "float32")
    recipe = SFTRecipe(model=spec, datasets=[DatasetSpec(path="synthetic")], output_dir=out,
                       lora=LoraSpec(r=a.lora, alpha=2 * a.lora) if a.lora else None,
                       checkpoint_layers=a.checkpoint_layers)
    args = {**SFT_DEFAULTS, **common_args(a, out), "per_device_train_batch_size": a.batch,
            "gradient_checkpointing": not a.no_checkpointing, "use_liger_kernel": True, "torch_compile": a.compile}
    args.pop("output_dir")
    adapt_to_device(args)
    config = sft_config(args, Path(out))
    model = load_model(spec, args).to(device())
    trainer = build_trainer(recipe, config, model, tok, ds)
    return trainer, {"liger": args["use_liger_kernel"], "attention": model.config._attn_implementation,
                     "checkpointing": args["gradient_checkpointing"] and a.checkpoint_layers, "compile": a.compile,
                     "lora": a.lora}


def build_trl(a: argparse.Namespace, variant: str, ds, tok, out: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from trl import SFTConfig

    from distill.sft.trainer import DistillSFTTrainer

    model_type, dims = ARCHS[a.arch]
    config = AutoConfig.for_model(model_type, max_position_embeddings=max(32768, a.max_length), **dims)
    on_gpu = device() == "cuda"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if on_gpu else torch.float32,
                                             attn_implementation="sdpa").to(device())
    packed = variant != "trl-padded"
    liger = variant == "trl-packed-liger" and on_gpu
    args = SFTConfig(**common_args(a, out), per_device_train_batch_size=a.batch if packed else a.padded_batch,
                     packing=packed, gradient_checkpointing=True, use_liger_kernel=liger)
    # DistillSFTTrainer only adds metering to SFTTrainer (it counts tokens; nothing about training changes)
    trainer = DistillSFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    return trainer, {"liger": liger, "attention": "sdpa", "checkpointing": True, "compile": False, "lora": 0}


def run_variant(a: argparse.Namespace) -> dict:
    import tempfile

    import torch

    out = tempfile.mkdtemp(prefix=f"sft_bench_{a.worker}_")
    if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # every variant alike (distill picks 1 thread for tiny models on CPU)
    ds = synthetic_dataset(a, ARCHS[a.arch][1]["vocab_size"])
    tok = stand_in_tokenizer()
    build = build_ours if a.worker == "ours" else (lambda *x: build_trl(x[0], a.worker, *x[1:]))
    trainer, setup = build(a, ds, tok, out)
    first = next(iter(trainer.get_train_dataloader()))
    error = logit_error(trainer.model, first)
    clock = StepClock(trainer.meter)
    trainer.add_callback(clock.callback())
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    clock.mark()
    tokens_per_s, flops_per_s, timed = clock.rates(a.warmup_steps)
    peak = trainer.meter.peak
    mem = (torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available()
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"variant": a.worker, "arch": a.arch, "max_length": a.max_length, "steps_timed": timed,
            "tokens_per_s": round(tokens_per_s), "mfu": round(flops_per_s / peak, 4) if peak else None,
            "peak_mem_gib": round(mem, 2), "logit_rel_err": round(error, 5), **setup,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "versions": versions()}


def versions() -> dict:
    from importlib import metadata

    found = {}
    for name in ("torch", "transformers", "trl", "liger-kernel"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


# ---------------------------------------------------------------- driver


def run_all(a: argparse.Namespace, argv: list[str]) -> list[dict]:
    results = []
    for variant in a.variants.split(","):
        if variant not in VARIANTS:
            sys.exit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        print(f"--- {variant}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, *argv, "--worker", variant], capture_output=True, text=True,
                              env={**os.environ, "DISTILL_PROGRESS": "0"})
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            results.append({"variant": variant, "error": tail[:300]})
        else:
            results.append(json.loads(line[len("RESULT "):]))
        print(json.dumps(results[-1]), flush=True)
    return results


def print_table(results: list[dict]) -> None:
    base = next((r for r in results if r.get("variant") == "trl-packed" and "error" not in r), None)
    print(f"\n{'variant':18} {'tokens/s':>10} {'MFU':>7} {'peak GiB':>9} {'logits vs per-doc':>18} {'x trl-packed':>13}")
    for r in results:
        if "error" in r:
            print(f"{r['variant']:18} failed: {r['error']}")
            continue
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        print(f"{r['variant']:18} {r['tokens_per_s']:>10,} {mfu:>7} {r['peak_mem_gib']:>9.1f} "
              f"{r['logit_rel_err']:>17.2%} {ratio:>13}")
    first = next((r for r in results if "error" not in r), {})
    print(f"\n{first.get('arch')} @ {first.get('max_length')} tokens on {first.get('device')}; {first.get('versions')}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    if a.worker:
        print("RESULT " + json.dumps(run_variant(a)), flush=True)
        return
    results = run_all(a, argv)
    print_table(results)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"benchmark": "sft_throughput", "results": results}))  # the last line: one JSON object


if __name__ == "__main__":
    main()
