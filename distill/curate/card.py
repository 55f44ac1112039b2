"""The dataset card that `distill curate` writes next to its data: `README.md` with the Hugging Face YAML header,
provenance, per-filter counts, the decontamination table and `token_lengths.png`.

    text = render_card(out_dir, cfg, generate_dir, report)      # report = curation_report.json as a dict
    plot_token_lengths(num_tokens, out_dir / "token_lengths.png")

The template is data_cards/template.md.j2 (shipped in the package as distill/templates/dataset_card.md.j2, a
link to it in a source checkout), so the wording of every card lives in one reviewable file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from distill._version import __version__
from distill.core.manifest import manifest_sha256, read_manifest
from distill.core.paths import TEMPLATES
from distill.core.teachers import TEACHERS
from distill.curate.filters import FILTERS

TEMPLATE = TEMPLATES / "dataset_card.md.j2"
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M")]


def dataset_stats(lengths, counted_with: str) -> dict[str, Any]:
    import numpy as np

    stats: dict[str, Any] = {"counted_with": counted_with, "rows": int(len(lengths))}
    if len(lengths):
        a = np.asarray(lengths)
        stats.update(total=int(a.sum()), min=int(a.min()), median=int(np.median(a)), mean=int(a.mean()),
                     p95=int(np.percentile(a, 95)), max=int(a.max()))
    return stats


def plot_token_lengths(lengths, path: Path) -> Path:
    """Histogram of num_tokens of the kept examples, with the median and 95th percentile marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    if len(lengths):
        a = np.asarray(lengths)
        ax.hist(a, bins=min(60, max(5, len(a) // 5)), color="#4c72b0", edgecolor="white")
        for value, label, style in ((np.median(a), "median", "--"), (np.percentile(a, 95), "p95", ":")):
            ax.axvline(value, color="#c44e52", linestyle=style, label=f"{label} {int(value):,}")
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no rows kept", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("tokens per example (prompt + response)")
    ax.set_ylabel("examples")
    ax.set_title(f"Token lengths of {len(lengths):,} kept examples")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def size_category(n: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if n < limit), "n>10M")


def card_license(cfg, teachers: list[str]) -> str:
    if cfg.license:
        return cfg.license
    licenses = {TEACHERS[t].license if t in TEACHERS else "other" for t in teachers} or {"other"}
    return licenses.pop() if len(licenses) == 1 else "other"


def provenance(generate_dir: Path | None) -> dict[str, Any]:
    """What made the traces, from the generate manifest; {} when the traces came without one."""
    manifest = read_manifest(generate_dir) if generate_dir else None
    if not manifest:
        return {}
    config = manifest.get("config", {})
    return {
        "path": str(generate_dir),
        "manifest_sha256": manifest_sha256(generate_dir),
        "sampling": config.get("resolved", {}),
        "sampling_history": manifest.get("sampling_history", []),
        "prompts": config.get("prompts"),
        "num_samples": config.get("num_samples"),
        "backend": manifest.get("counts", {}).get("this_run", {}).get("backend"),
        "started_at": manifest.get("started_at"),
        "finished_at": manifest.get("finished_at"),
        "status": manifest.get("status"),
        "counts": manifest.get("counts", {}),
        "lineage": manifest.get("lineage", []),
        "distill_version": manifest.get("distill_version"),
    }


def render_card(out: Path, cfg, generate_dir: Path | None, report: dict[str, Any]) -> str:
    import jinja2

    kept = report["counts"]["kept"]
    teachers = list(report["kept_by"]["teacher"])
    filters = [
        {"name": name, "doc": FILTERS[name].doc, "dropped": report["counts"]["dropped"].get(name, 0),
         "params": dataclasses.asdict(cfg.params(name)), "examples": report["examples"].get(name, [])}
        for name in cfg.filters
    ]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(TEMPLATE.name).render(
        name=cfg.dataset_name or Path(out).resolve().name, license=card_license(cfg, teachers),
        size_category=size_category(kept), report=report, filters=filters, gen=provenance(generate_dir),
        cfg=cfg, version=__version__, tasks=["text-generation"],
    )
