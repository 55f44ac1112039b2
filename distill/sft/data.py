"""The training data of `distill sft`: curate output dirs (or hub datasets) -> one weighted, tokenized mixture.

    data = build_datasets(recipe.datasets, tokenizer, eos_id, max_length=16384, cache_dir=out / ".cache")
    data.train   # datasets.Dataset with input_ids and labels (-100 on prompt tokens), ready for SFTTrainer

Reads `DIR/data/train-*.parquet` (SFT_EXAMPLE schema, validated) or a hub dataset with a `messages` column.
A dataset's weight scales its rows (0.5: a seeded random half, 2: every row twice), so a 600K reasoning /
200K non-reasoning mix is one list. The eval split is held out by prompt id, so no sample of an eval prompt is
trained on. The tokenized mixture is cached under the output dir, so a resumed run or every rank of a multi-GPU
run reuses it instead of tokenizing again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.manifest import read_manifest
from distill.core.readers import looks_local
from distill.core.schema import SFT_EXAMPLE, validate
from distill.core.stage_dirs import DATA, TRAIN, shard_paths
from distill.sft.student_template import IGNORE, tokenize_example

TOKENIZE_VERSION = 1  # bump when tokenization changes, so cached datasets are rebuilt


@dataclass
class SFTData:
    train: Any
    eval: Any | None
    stats: dict[str, Any] = field(default_factory=dict)
    local_dirs: list[Path] = field(default_factory=list)  # curate dirs, for the manifest's lineage


def build_datasets(specs: list, tokenizer: Any, eos_id: int, max_length: int | None, cache_dir: Path,
                   drop_too_long: bool = True, num_proc: int | None = None) -> SFTData:
    """Load, weight, split and tokenize every dataset of a recipe; see the module docstring."""
    from datasets import concatenate_datasets

    cache_dir.mkdir(parents=True, exist_ok=True)
    trains, evals, stats, local = [], [], {"datasets": []}, []
    for spec in specs:
        ds, source_dir = load_one(spec, cache_dir)
        train, held_out = split_eval(ds, spec.eval_size, spec.seed)
        train = apply_weight(train, spec.weight, spec.seed)
        trains.append(train)
        if held_out is not None:
            evals.append(held_out)
        local += [source_dir] if source_dir else []
        stats["datasets"].append({"path": spec.path, "rows": len(ds), "weight": spec.weight, "train_rows": len(train),
                                  "eval_rows": len(held_out) if held_out is not None else 0,
                                  "reasoning_rows": reasoning_rows(train)})
    # eval's --reasoning auto reads this from the manifest: was the student taught to think in <think> blocks?
    stats["reasoning_rows"] = sum(d["reasoning_rows"] for d in stats["datasets"])
    key = cache_key(specs, tokenizer, eos_id, max_length, drop_too_long)
    train = tokenize(concatenate_datasets(trains), tokenizer, eos_id, cache_dir / f"train-{key}.arrow", num_proc)
    train, stats["dropped_too_long"] = drop_long(train, max_length, drop_too_long, num_proc)
    stats.update(token_stats(train))
    held = None
    if evals:
        held = tokenize(concatenate_datasets(evals), tokenizer, eos_id, cache_dir / f"eval-{key}.arrow", num_proc)
        held, _ = drop_long(held, max_length, drop_too_long, num_proc)
    if len(train) == 0:
        raise DistillError(f"no training examples left (all longer than max_length {max_length}?); raise "
                           "sft.max_length or set drop_too_long: false")
    extra = ["num_tokens", "num_trained"]
    return SFTData(train.remove_columns(extra), held.remove_columns(extra) if held else None, stats, local)


def reasoning_rows(ds: Any) -> int:
    """Rows whose assistant turn closes a think block (`</think>`), counted in Arrow without a Python loop."""
    import pyarrow.compute as pc

    if len(ds) == 0:
        return 0
    messages = ds.select_columns(["messages"]).with_format("arrow")[:]["messages"].combine_chunks()
    turns = pc.list_flatten(messages)
    thinks = pc.and_(pc.equal(pc.struct_field(turns, "role"), "assistant"),
                     pc.match_substring(pc.struct_field(turns, "content"), "</think>"))
    return len(pc.unique(pc.filter(pc.list_parent_indices(messages), thinks)))


# ---------------------------------------------------------------- loading


def load_one(spec: Any, cache_dir: Path) -> tuple[Any, Path | None]:
    """(dataset with `id`, `prompt_id` and `messages`, the local dir or None for a hub dataset)."""
    path = Path(spec.path).expanduser()
    if path.exists():
        return load_local(path, cache_dir), path
    check_datasets([spec])
    return load_hub(spec, cache_dir), None


def check_datasets(specs: list) -> None:
    """Fail fast, before any launch or model load, on a local dataset that is missing, not curate output, or of
    the wrong schema (hub ids are checked when they load)."""
    import os

    offline = any(os.environ.get(k, "0") not in ("0", "") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    for spec in specs:
        path = Path(spec.path).expanduser()
        if path.exists():
            local_files(path)
        elif offline or looks_local(spec.path) or "/" not in spec.path:  # SFT sets on the hub are all org/name
            raise DistillError(f"dataset '{spec.path}' not found; pass a curate output dir (DIR/data/train-*.parquet) "
                               "or a hub id")


def local_files(path: Path) -> list[Path]:
    """The SFT shards of a curate output dir (or a parquet file), schema-checked."""
    import pyarrow.parquet as pq

    manifest = read_manifest(path) if path.is_dir() else None
    if manifest and manifest.get("stage") == "generate":
        raise DistillError(f"'{path}' holds teacher traces (generate output); run `distill curate {path} --out DIR` "
                           "and train on DIR")
    files = data_files(path, shard_paths)
    rows = 0
    for f in files:
        footer = pq.read_metadata(f)  # schema and row count from one read of the footer
        validate(footer.schema.to_arrow_schema(), SFT_EXAMPLE, str(f))
        rows += footer.num_rows
    if rows == 0:
        kept = (manifest or {}).get("counts", {})
        why = (f"curate kept 0 of {kept['input_rows']:,} traces; {path / 'curation_report.json'} says why"
               if "input_rows" in kept else "no rows in its shards")
        raise DistillError(f"dataset '{path}' has no training examples ({why})")
    return files


def load_local(path: Path, cache_dir: Path) -> Any:
    from datasets import Dataset

    files = local_files(path)
    return Dataset.from_parquet([str(f) for f in files], columns=["id", "prompt_id", "messages"],
                                cache_dir=str(cache_dir / "datasets"))


def data_files(path: Path, shard_paths: Any) -> list[Path]:
    if path.is_file():
        return [path]
    files = shard_paths(path / DATA, TRAIN) or shard_paths(path, TRAIN) or sorted(path.glob("*.parquet"))
    if not files:
        raise DistillError(f"'{path}' holds no data/train-*.parquet shards; pass a curate output dir")
    return files


def load_hub(spec: Any, cache_dir: Path) -> Any:
    try:
        import datasets

        ds = datasets.load_dataset(spec.path, spec.subset, split=spec.split, cache_dir=str(cache_dir / "datasets"))
    except Exception as err:  # noqa: BLE001 - the hub raises many kinds; all mean "could not load"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DistillError(f"dataset '{spec.path}' is not a local directory and could not be loaded from the hub "
                           f"({first}); pass a curate output dir (DIR/data/train-*.parquet) or a hub dataset id") from None
    if "messages" not in ds.column_names:
        raise DistillError(f"hub dataset '{spec.path}' has no 'messages' column (columns: "
                           f"{', '.join(ds.column_names[:10])}); it must be conversational like curate output")
    n = len(ds)
    ids = ds["id"] if "id" in ds.column_names else [f"{spec.path}/{i}" for i in range(n)]
    prompt_ids = ds["prompt_id"] if "prompt_id" in ds.column_names else ids
    return ds.select_columns(["messages"]).add_column("id", ids).add_column("prompt_id", prompt_ids)


# ---------------------------------------------------------------- mixing


def split_eval(ds: Any, eval_size: float, seed: int) -> tuple[Any, Any | None]:
    """Hold out a fraction (< 1) or a number (>= 1) of prompts, chosen by a seeded hash of the prompt id: all
    samples of a held-out prompt leave the training set together."""
    if not eval_size:
        return ds, None
    prompt_ids = sorted(set(ds["prompt_id"]), key=lambda p: _hash(f"{seed}:{p}"))
    n_eval = int(eval_size) if eval_size >= 1 else max(1, round(eval_size * len(prompt_ids)))
    held = set(prompt_ids[:n_eval])
    flags = [p in held for p in ds["prompt_id"]]
    train = ds.select([i for i, f in enumerate(flags) if not f])
    return train, ds.select([i for i, f in enumerate(flags) if f])


def apply_weight(ds: Any, weight: float, seed: int) -> Any:
    """Every row int(weight) times, plus a seeded random share of the fractional part."""
    import numpy as np

    whole, frac = int(weight), weight - int(weight)
    rng = np.random.default_rng(seed)
    extra = rng.choice(len(ds), size=round(frac * len(ds)), replace=False).tolist() if frac else []
    indices = list(range(len(ds))) * whole + sorted(extra)
    return ds if indices == list(range(len(ds))) else ds.select(indices)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(specs: list, tokenizer: Any, eos_id: int, max_length: int | None, drop_too_long: bool) -> str:
    """Changes whenever the tokenized mixture would: data files, weights and splits, template, EOS, lengths."""
    files = []
    for spec in specs:
        path = Path(spec.path).expanduser()
        found = sorted(path.rglob("*.parquet")) if path.is_dir() else [path] if path.exists() else []
        files.append([spec.path, [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in found]])
    blob = json.dumps([TOKENIZE_VERSION, files, [vars(s) for s in specs], tokenizer.chat_template, eos_id,
                       len(tokenizer), max_length, drop_too_long], default=str)
    return _hash(blob)[:16]


# ---------------------------------------------------------------- tokens


def tokenize(ds: Any, tokenizer: Any, eos_id: int, cache_file: Path, num_proc: int | None) -> Any:
    """input_ids, labels and their counts, stored as int32 (half the cache of datasets' default int64). Large
    datasets are tokenized by several processes unless sft.dataset_num_proc says otherwise."""
    import os

    from datasets import Features, Sequence, Value

    if num_proc is None and len(ds) >= 20_000:
        num_proc = max(1, min(32, (os.cpu_count() or 2) // 2))
    features = Features({"input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
                         "num_tokens": Value("int32"), "num_trained": Value("int32")})

    def encode_batch(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "labels": [], "num_tokens": [], "num_trained": []}
        for messages in batch["messages"]:
            ids, labels = tokenize_example(tokenizer, messages, eos_id)
            out["input_ids"].append(ids)
            out["labels"].append(labels)
            out["num_tokens"].append(len(ids))
            out["num_trained"].append(sum(1 for t in labels if t != IGNORE))
        return out

    return ds.map(encode_batch, batched=True, batch_size=256, num_proc=num_proc, remove_columns=ds.column_names,
                  features=features, cache_file_name=str(cache_file), new_fingerprint=cache_file.stem,
                  desc="tokenizing")


def drop_long(ds: Any, max_length: int | None, drop: bool, num_proc: int | None) -> tuple[Any, int]:
    """Drop examples longer than max_length: a trace cut short never reaches its answer or its EOS, so training on
    it teaches the student to ramble. With drop off, TRL truncates them instead."""
    if not drop or not max_length:
        return ds, 0
    kept = ds.filter(lambda n: n <= max_length, input_columns="num_tokens", num_proc=num_proc, desc="length filter")
    return kept, len(ds) - len(kept)


def token_stats(ds: Any) -> dict[str, Any]:
    import numpy as np

    lengths = np.asarray(ds["num_tokens"])
    trained = int(np.asarray(ds["num_trained"]).sum()) if len(ds) else 0
    return {
        "examples": int(len(lengths)),
        "tokens": int(lengths.sum()),
        "trained_tokens": trained,
        "mean_tokens": round(float(lengths.mean()), 1) if len(lengths) else 0.0,
        "max_tokens": int(lengths.max()) if len(lengths) else 0,
    }
