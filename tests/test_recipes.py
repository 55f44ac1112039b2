"""Every file under recipes/ parses and validates: SFT recipes into SFTRecipe and TRL's SFTConfig, accelerate
configs through accelerate's own parser, the Slurm script through `bash -n`; each student recipe names its exact
base model and command, and fits its stated hardware by distill's memory estimate."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

RECIPES = REPO / "recipes"
STUDENTS = ["qwen1_5b", "qwen7b", "qwen14b", "qwen32b", "llama8b", "llama70b"]
SFT_RECIPES = sorted(RECIPES.glob("*.yaml"))
ACCELERATE = sorted((RECIPES / "accelerate").glob("*.yaml"))

# Architectures of the six bases (from their config.json on the hub), so sizing is checked offline.
SHAPES = {
    "Qwen/Qwen2.5-Math-1.5B": ("qwen2", dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                             num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                             tie_word_embeddings=True)),
    "Qwen/Qwen2.5-Math-7B": ("qwen2", dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                           num_attention_heads=28, num_key_value_heads=4, vocab_size=152064)),
    "Qwen/Qwen2.5-14B": ("qwen2", dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48,
                                       num_attention_heads=40, num_key_value_heads=8, vocab_size=152064)),
    "Qwen/Qwen2.5-32B": ("qwen2", dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64,
                                       num_attention_heads=40, num_key_value_heads=8, vocab_size=152064)),
    "meta-llama/Llama-3.1-8B": ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                              num_attention_heads=32, num_key_value_heads=8, vocab_size=128256)),
    "meta-llama/Llama-3.3-70B-Instruct": ("llama", dict(hidden_size=8192, intermediate_size=28672,
                                                        num_hidden_layers=80, num_attention_heads=64,
                                                        num_key_value_heads=8, vocab_size=128256)),
}


def test_every_student_of_the_r1_table_has_a_recipe():
    assert {p.stem for p in SFT_RECIPES} >= set(STUDENTS) | {"tiny"}
    assert {p.name for p in ACCELERATE} >= {"single_gpu.yaml", "ddp.yaml", "fsdp.yaml", "zero3.yaml"}


@pytest.mark.parametrize("path", SFT_RECIPES, ids=lambda p: p.name)
def test_sft_recipe_parses_and_validates(path: Path, tmp_path):
    from distill.sft.launch import read_accelerate_config
    from distill.sft.recipe import load_recipe
    from distill.sft.run import resolve_args, sft_config

    recipe = load_recipe(path)
    args = resolve_args(recipe)
    sft_config(args, tmp_path)  # TRL accepts every value
    if recipe.launch.accelerate_config:
        read_accelerate_config(str(REPO / recipe.launch.accelerate_config))
    header = path.read_text().split("\n# Model")[0]
    assert f"distill sft recipes/{path.name}" in header, "the header must give the exact command"
    assert recipe.model.init == "from_config" or recipe.model.name in header, "the header must name the base model"
    assert "Hardware:" in header


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_config_validates(path: Path):
    from distill.sft.launch import read_accelerate_config, sharding

    config = read_accelerate_config(str(path))
    expected = {"single_gpu": "none", "ddp": "none", "fsdp": "fsdp", "zero3": "zero3"}
    assert sharding(config) == expected[path.stem]


SCRIPTS = sorted(p for p in RECIPES.rglob("*") if p.suffix in (".sh", ".sbatch", ".slurm"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(RECIPES)))
def test_shell_scripts_are_valid_bash(path: Path):
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_slurm_sft_example_runs_one_distill_sft_per_node():
    text = (RECIPES / "slurm" / "sft_multinode.sbatch").read_text()
    assert "distill sft" in text and "launch.machine_rank=\\$SLURM_NODEID" in text


@pytest.mark.parametrize("path", [p for p in SCRIPTS if p.suffix in (".sbatch", ".slurm")],
                         ids=lambda p: str(p.relative_to(RECIPES)))
def test_slurm_scripts_stop_cleanly_and_requeue(path: Path):
    """Preemption and the time limit: the batch shell is signalled ahead of the end, passes SIGTERM on to distill
    (which commits and exits 143) and requeues the job, appending to the same log."""
    text = path.read_text()
    assert re.search(r"#SBATCH --signal=B:TERM@\d+", text) and "#SBATCH --requeue" in text
    assert "#SBATCH --open-mode=append" in text
    assert "trap stop_and_requeue TERM" in text and "scontrol requeue" in text


def test_generate_array_runs_one_part_per_array_task():
    text = (RECIPES / "slurm" / "generate_array.sbatch").read_text()
    assert '--part "$PART/$PARTS"' in text and "SLURM_ARRAY_TASK_ID" in text and "--backend vllm" in text


def test_curate_configs_validate():
    from distill.core.config import load_config
    from distill.curate.config import CurateConfig

    files = sorted((RECIPES / "curate").glob("*.yaml"))
    assert files, "recipes/curate/ holds the default filter chain"
    for path in files:
        load_config(CurateConfig, path, values={"src": "runs/gen", "out": "runs/data"})


def test_readme_lists_every_recipe():
    readme = (RECIPES / "README.md").read_text()
    for path in SFT_RECIPES:
        assert f"`{path.name}`" in readme, path.name
    for name, _ in SHAPES.items():
        assert name in readme


@pytest.mark.parametrize("name", STUDENTS)
def test_recipe_fits_its_hardware_by_the_memory_estimate(name: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from distill.sft.launch import read_accelerate_config
    from distill.sft.memory import estimate, memory_plan, shape_of
    from distill.sft.recipe import load_recipe
    from distill.sft.run import resolve_args

    recipe = load_recipe(RECIPES / f"{name}.yaml", ["launch.gpu_memory_gb=80"])
    model_type, dims = SHAPES[recipe.model.name]
    config = AutoConfig.for_model(model_type, **dims)
    with torch.device("meta"):
        params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    args = resolve_args(recipe)
    shape = shape_of(config, params)
    est = estimate(shape, memory_plan(recipe, args, read_accelerate_config(str(REPO / recipe.launch.accelerate_config)),
                                      shape))
    assert est.fits, f"{name}: {est.table()}"
