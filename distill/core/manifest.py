"""A stage directory's manifest.json (stage, version, resolved config, inputs with their hashes, counts, times)
and the lineage a later stage copies forward; the lock that keeps two runs out of one directory. Standard library
only: the CLI and every stage read manifests without loading pyarrow.

    write_manifest(out, "generate", config=..., inputs=[], counts={"rows": 100})
    read_manifest(out)["status"]   # "complete"
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distill._version import __version__
from distill.core.errors import DistillError
from distill.core.log import get_logger

MANIFEST = "manifest.json"


# ---------------------------------------------------------------- atomic writes


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A hidden temp path beside `path`, renamed over it when the block succeeds: a reader (or a resumed run)
    sees the old file or the new one, never half of one. Every file a later run reads as "done" (manifests,
    curation_report.json, results.json, staged units) is written through this."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    yield tmp
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """`data` as indented JSON (non-JSON values as their str), the way every distill JSON file is written."""
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


class DirLock:
    """An exclusive lock on an output directory, so two runs never write the same shards; released by the OS
    when the process dies, so a killed run never leaves a stale lock."""

    def __init__(self, directory: str | Path, what: str):
        self.path = Path(directory) / ".lock"
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> DirLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 64).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise DistillError(
                f"{self.path.parent} is being written by {self.what} (pid {holder}); wait for it to finish "
                "or choose another --out"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------- manifests


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def manifest_sha256(directory: str | Path) -> str | None:
    path = Path(directory) / MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest of a stage directory, or None when it has none."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DistillError(f"{path} is not valid JSON; restore it or delete it (the lineage then says unknown)") from None


def is_complete(directory: str | Path) -> bool:
    """Whether a stage directory holds a finished run (its manifest says status complete)."""
    return (read_manifest(directory) or {}).get("status") == "complete"


def finished_run(out: Path, stage: str, run_key: str, force: bool) -> bool:
    """A training stage's resume check (sft, opd): True, after saying so, when `out` holds this run's finished
    model (its manifest's config.run_key); another run's finished model is refused unless `force`."""
    manifest = read_manifest(out)
    if not manifest or manifest.get("stage") != stage or manifest.get("status") != "complete":
        return False
    if manifest.get("config", {}).get("run_key") == run_key:
        get_logger().info(f"{out} already holds the finished model of this recipe; nothing to do")
        return True
    if not force:
        raise DistillError(f"{out} already holds a finished model of another recipe; choose another output_dir, "
                           "or --force to train over it")
    return False


def lineage_entry(directory: str | Path) -> dict[str, Any]:
    """What a later stage records about one of its inputs: where it is, its manifest hash, and what made it."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        return {"path": str(directory), "stage": "unknown", "manifest_sha256": None}
    return {
        "path": str(directory.resolve()),
        "stage": manifest.get("stage", "unknown"),
        "manifest_sha256": manifest_sha256(directory),
        "config": manifest.get("config", {}),
        "counts": manifest.get("counts", {}),
        "finished_at": manifest.get("finished_at"),
    }


def spelled_out(value: Any) -> Any:
    """`value` (a setting, or a dict/list of them) with every local path made absolute. Resume checks compare
    settings through it, so `runs/tok` and `/home/me/runs/tok` do not read as a changed config when a run is
    resumed from another directory; hub ids and other strings pass through unchanged."""
    if isinstance(value, dict):
        return {k: spelled_out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [spelled_out(v) for v in value]
    if isinstance(value, str) and value and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def write_manifest(
    directory: str | Path,
    stage: str,
    config: dict[str, Any],
    inputs: Sequence[str | Path] = (),
    counts: dict[str, Any] | None = None,
    started_at: str | None = None,
    status: str = "complete",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `manifest.json` atomically. `lineage` is every ancestor stage, nearest first, so any later
    stage (an eval report) can name the dataset, recipe and teacher behind what it looks at."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    input_entries = [lineage_entry(p) for p in inputs]
    lineage: list[dict[str, Any]] = []
    for entry, path in zip(input_entries, inputs, strict=True):
        lineage.append(entry)
        upstream = read_manifest(path) or {}
        lineage.extend(upstream.get("lineage", []))
    manifest = {
        "stage": stage,
        "status": status,
        "distill_version": __version__,
        "config": config,
        "inputs": [{k: e[k] for k in ("path", "stage", "manifest_sha256")} for e in input_entries],
        "lineage": lineage,
        "counts": counts or {},
        "started_at": started_at or now(),
        "finished_at": now() if status == "complete" else None,
        "host": platform.node(),
        "versions": package_versions(),
        **(extra or {}),
    }
    return atomic_write_json(directory / MANIFEST, manifest)


def find_stage(manifest: dict[str, Any] | None, stage: str) -> dict[str, Any] | None:
    """The nearest ancestor of `stage` in a manifest's lineage (or the manifest itself)."""
    if not manifest:
        return None
    if manifest.get("stage") == stage:
        return manifest
    return next((e for e in manifest.get("lineage", []) if e.get("stage") == stage), None)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide results, read from metadata (nothing is imported)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "accelerate", "peft", "datasets", "lm_eval", "math-verify", "vllm"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions
