"""The `distill` command: one subcommand per stage, each a thin layer over the stage function.

    distill generate --teacher deepseek-r1 --prompts prompts.jsonl --out runs/gen --base-url http://n1:8000/v1
    distill teachers

A command builds its stage's config (defaults < --config YAML < options < --set key=value), calls the stage
and lets it print its summary. A DistillError becomes one line on stderr and exit status 2, never a traceback.
Help texts come from the config dataclasses, so they are written once.
"""

from __future__ import annotations

import sys

import typer

from distill._version import __version__
from distill.core.config import help_for, load_config
from distill.core.errors import DistillError, Interrupted
from distill.core.log import filter_library_log, hide_library_bars, is_main_process, set_json_log
from distill.core.teachers import TEACHERS
from distill.curate import curate as run_curate
from distill.curate.config import CurateConfig
from distill.demo import demo as run_demo
from distill.demo.config import DemoConfig
from distill.eval import evaluate as run_eval
from distill.eval.config import EvalConfig, parse_budgets
from distill.generate import generate as run_generate
from distill.generate.config import GenerateConfig
from distill.opd import opd
from distill.opd.recipe import load_recipe as load_opd_recipe
from distill.plan import plan as run_plan
from distill.plan.config import PlanConfig
from distill.plan.report import print_plan
from distill.sft import sft
from distill.sft.recipe import load_recipe

app = typer.Typer(
    name="distill",
    help="Distil a large reasoning teacher into small dense reasoning students: generate -> curate -> sft -> eval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _print_version(value: bool) -> None:
    if value:
        print(f"distill {__version__}")
        raise typer.Exit()


@app.callback()
def _top_level(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Distil a large reasoning teacher into small dense reasoning students: generate -> curate -> sft -> eval."""


CONFIG_HELP = "YAML file with the stage's config; options and --set override it."
SET_HELP = "Override any config key: --set key=value (repeatable; dotted keys reach nested fields)."
LOG_JSON_HELP = "Also write the progress and the summary as JSON lines to this file (appended), for dashboards."


def _log_json(path: str | None) -> None:
    set_json_log(path)


def _gen(name: str) -> str:
    return help_for(GenerateConfig, name)


@app.command()
def generate(
    prompts: str | None = typer.Option(None, "--prompts", help=_gen("prompts")),
    out: str | None = typer.Option(None, "--out", help=_gen("out")),
    teacher: str | None = typer.Option(None, help=_gen("teacher")),
    model: str | None = typer.Option(None, help=_gen("model")),
    backend: str | None = typer.Option(None, help=_gen("backend")),
    id_field: str | None = typer.Option(None, help=_gen("id_field")),
    problem_field: str | None = typer.Option(None, help=_gen("problem_field")),
    answer_field: str | None = typer.Option(None, help=_gen("answer_field")),
    source_field: str | None = typer.Option(None, help=_gen("source_field")),
    tests_field: str | None = typer.Option(None, help=_gen("tests_field")),
    entry_point_field: str | None = typer.Option(None, help=_gen("entry_point_field")),
    language_field: str | None = typer.Option(None, help=_gen("language_field")),
    split: str | None = typer.Option(None, help=_gen("split")),
    subset: str | None = typer.Option(None, help=_gen("subset")),
    limit: int | None = typer.Option(None, help=_gen("limit")),
    num_samples: int | None = typer.Option(None, "--num-samples", "-k", help=_gen("num_samples")),
    max_tokens: int | None = typer.Option(None, help=_gen("max_tokens")),
    temperature: float | None = typer.Option(None, help=_gen("temperature")),
    top_p: float | None = typer.Option(None, help=_gen("top_p")),
    seed: int | None = typer.Option(None, help=_gen("seed")),
    system_prompt: str | None = typer.Option(None, help=_gen("system_prompt")),
    default_system: str | None = typer.Option(None, help=_gen("default_system")),
    prompt_suffix: str | None = typer.Option(None, help=_gen("prompt_suffix")),
    code_prompt_suffix: str | None = typer.Option(None, help=_gen("code_prompt_suffix")),
    base_url: list[str] | None = typer.Option(None, help=_gen("base_url")),
    api_key_env: str | None = typer.Option(None, help=_gen("api_key_env")),
    concurrency: int | None = typer.Option(None, help=_gen("concurrency")),
    request_timeout: float | None = typer.Option(None, help=_gen("request_timeout")),
    max_retries: int | None = typer.Option(None, help=_gen("max_retries")),
    tensor_parallel: int | None = typer.Option(None, help=_gen("tensor_parallel")),
    pipeline_parallel: int | None = typer.Option(None, help=_gen("pipeline_parallel")),
    data_parallel: int | None = typer.Option(None, help=_gen("data_parallel")),
    max_model_len: int | None = typer.Option(None, help=_gen("max_model_len")),
    gpu_type: str | None = typer.Option(None, help=_gen("gpu_type")),
    serving_hints: bool | None = typer.Option(None, "--serving-hints/--no-serving-hints", help=_gen("serving_hints")),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=_gen("trust_remote_code")),
    batch_size: int | None = typer.Option(None, help=_gen("batch_size")),
    dtype: str | None = typer.Option(None, help=_gen("dtype")),
    force: bool = typer.Option(False, "--force", help=_gen("force")),
    part: str | None = typer.Option(None, "--part", help=_gen("part")),
    stop_grace_s: float | None = typer.Option(None, "--stop-grace", help=_gen("stop_grace_s")),
    config: str | None = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    log_json: str | None = typer.Option(None, "--log-json", help=LOG_JSON_HELP),
) -> None:
    """Generate teacher traces for a prompt set (resumable: re-run the same command after a crash)."""
    _log_json(log_json)
    values = {k: v for k, v in locals().items() if k not in ("config", "set_", "run", "load_config", "log_json")}
    values["force"] = force or None
    values["trust_remote_code"] = trust_remote_code or None
    values["base_url"] = base_url or None
    run_generate(load_config(GenerateConfig, config, set_ or [], values))


@app.command()
def teachers() -> None:
    """List the teacher registry: model, sampling defaults and serving hints."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="teachers (distill generate --teacher NAME)", title_justify="left")
    for col in ("name", "model", "reasoning", "T / top-p", "max tokens", "serving (GPU: TPxPP, nodes)"):
        table.add_column(col)
    for t in TEACHERS.values():
        serving = "; ".join(
            f"{gpu}: {h['tensor_parallel']}x{h['pipeline_parallel']}, {h['nodes']}n" for gpu, h in t.serving.items()
        )
        table.add_row(t.name, t.model_id, "yes" if t.reasoning else "no", f"{t.temperature} / {t.top_p}",
                      f"{t.max_tokens:,}", serving or "-")
    Console(width=None if Console().is_terminal else 160).print(table)  # logs and pipes: no truncated ids


def _cur(name: str) -> str:
    return help_for(CurateConfig, name)


@app.command()
def curate(
    src: str = typer.Argument(..., help=_cur("src")),
    out: str | None = typer.Option(None, "--out", help=_cur("out")),
    input_format: str | None = typer.Option(None, help=_cur("input_format")),
    problem_field: str | None = typer.Option(None, help=_cur("problem_field")),
    completion_field: str | None = typer.Option(None, help=_cur("completion_field")),
    answer_field: str | None = typer.Option(None, help=_cur("answer_field")),
    id_field: str | None = typer.Option(None, help=_cur("id_field")),
    source_field: str | None = typer.Option(None, help=_cur("source_field")),
    split: str | None = typer.Option(None, help=_cur("split")),
    subset: str | None = typer.Option(None, help=_cur("subset")),
    eval_data_dir: str | None = typer.Option(None, help=_cur("eval_data_dir")),
    tokenizer: str | None = typer.Option(None, help=_cur("tokenizer")),
    num_proc: int | None = typer.Option(None, help=_cur("num_proc")),
    dataset_name: str | None = typer.Option(None, help=_cur("dataset_name")),
    force: bool = typer.Option(False, "--force", help=_cur("force")),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help=_cur("allow_incomplete")),
    config: str | None = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    log_json: str | None = typer.Option(None, "--log-json", help=LOG_JSON_HELP),
) -> None:
    """Filter teacher traces into an SFT dataset: verify answers, filter, dedup, decontaminate (resumable)."""
    _log_json(log_json)
    values = {"src": src, "out": out, "eval_data_dir": eval_data_dir, "tokenizer": tokenizer, "num_proc": num_proc,
              "dataset_name": dataset_name, "force": force or None, "input_format": input_format,
              "problem_field": problem_field, "completion_field": completion_field, "answer_field": answer_field,
              "id_field": id_field, "source_field": source_field, "split": split, "subset": subset,
              "allow_incomplete": allow_incomplete or None}
    run_curate(load_config(CurateConfig, config, set_ or [], values))


@app.command(name="sft")
def sft_command(
    recipe: str = typer.Argument(..., help="Recipe YAML (recipes/qwen1_5b.yaml, ...): student, datasets, sft, lora, launch."),
    output_dir: str | None = typer.Option(None, "--output-dir", help="Where the model goes (overrides output_dir)."),
    force: bool = typer.Option(False, "--force", help="Train into an output dir that holds another recipe's run."),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    log_json: str | None = typer.Option(None, "--log-json", help=LOG_JSON_HELP),
) -> None:
    """Fine-tune a student on curated traces; resumes from the last checkpoint when re-run."""
    _log_json(log_json)
    overrides = list(set_ or []) + ([f"output_dir={output_dir}"] if output_dir else []) + (["force=true"] if force else [])
    sft(load_recipe(recipe, overrides))


@app.command(name="opd")
def opd_command(
    recipe: str = typer.Argument(..., help="Recipe YAML (recipes/opd/*.yaml): student, teacher, prompts, loss, "
                                 "generation, opd, lora, launch."),
    output_dir: str | None = typer.Option(None, "--output-dir", help="Where the model goes (overrides output_dir)."),
    force: bool = typer.Option(False, "--force", help="Train into an output dir that holds another recipe's run."),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    log_json: str | None = typer.Option(None, "--log-json", help=LOG_JSON_HELP),
) -> None:
    """On-policy distillation: the student samples, a same-vocabulary teacher scores every token (reverse KL)."""
    _log_json(log_json)
    overrides = list(set_ or []) + ([f"output_dir={output_dir}"] if output_dir else []) + (["force=true"] if force else [])
    opd(load_opd_recipe(recipe, overrides))


def _ev(name: str) -> str:
    return help_for(EvalConfig, name)


@app.command("eval")
def evaluate(
    model: str | None = typer.Option(None, "--model", help=_ev("model")),
    tasks: str | None = typer.Option(None, "--tasks", help=_ev("tasks")),
    out: str | None = typer.Option(None, "--out", help=_ev("out")),
    backend: str | None = typer.Option(None, "--backend", help=_ev("backend")),
    samples: int | None = typer.Option(None, "--samples", "-k", help=_ev("samples")),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help=_ev("max_tokens")),
    limit: int | None = typer.Option(None, "--limit", help=_ev("limit")),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_ev("data_dir")),
    published: str | None = typer.Option(None, "--published", help=_ev("published")),
    reasoning: str | None = typer.Option(None, "--reasoning", help=_ev("reasoning")),
    think_prefill: bool | None = typer.Option(None, "--think-prefill/--no-think-prefill",
                                                 help=_ev("think_prefill")),
    default_system: str | None = typer.Option(None, "--default-system", help=_ev("default_system")),
    baseline: str | None = typer.Option(None, "--baseline", help=_ev("baseline")),
    temperature: float | None = typer.Option(None, help=_ev("temperature")),
    top_p: float | None = typer.Option(None, help=_ev("top_p")),
    seed: int | None = typer.Option(None, help=_ev("seed")),
    dtype: str | None = typer.Option(None, help=_ev("dtype")),
    batch_size: int | None = typer.Option(None, help=_ev("batch_size")),
    tensor_parallel: int | None = typer.Option(None, help=_ev("tensor_parallel")),
    data_parallel: int | None = typer.Option(None, help=_ev("data_parallel")),
    gpu_memory_utilization: float | None = typer.Option(None, help=_ev("gpu_memory_utilization")),
    max_model_len: int | None = typer.Option(None, help=_ev("max_model_len")),
    base_url: str | None = typer.Option(None, help=_ev("base_url")),
    served_model: str | None = typer.Option(None, help=_ev("served_model")),
    api_key_env: str | None = typer.Option(None, help=_ev("api_key_env")),
    concurrency: int | None = typer.Option(None, help=_ev("concurrency")),
    budgets: str | None = typer.Option(None, "--budgets", help=_ev("budgets")),
    chat_template: str | None = typer.Option(None, "--chat-template", help=_ev("chat_template")),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=_ev("trust_remote_code")),
    force: bool = typer.Option(False, "--force", help=_ev("force")),
    config: str | None = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    log_json: str | None = typer.Option(None, "--log-json", help=LOG_JSON_HELP),
) -> None:
    """Evaluate a model on AIME / MATH-500 under the R1 protocol and report it beside the published numbers."""
    _log_json(log_json)
    values = {k: v for k, v in locals().items()
              if k not in ("config", "set_", "run", "load_config", "EvalConfig", "log_json")}
    values["force"] = force or None
    values["trust_remote_code"] = trust_remote_code or None
    values["tasks"] = tasks.split(",") if tasks else None
    values["budgets"] = parse_budgets([budgets]) if budgets else None
    run_eval(load_config(EvalConfig, config, set_ or [], values))


def _demo(name: str) -> str:
    return help_for(DemoConfig, name)


@app.command()
def demo(
    quick: bool = typer.Option(False, "--quick", help=_demo("quick")),
    out: str | None = typer.Option(None, "--out", help=_demo("out")),
    train_problems: int | None = typer.Option(None, help=_demo("train_problems")),
    test_problems: int | None = typer.Option(None, help=_demo("test_problems")),
    max_steps: int | None = typer.Option(None, help=_demo("max_steps")),
    eval_samples: int | None = typer.Option(None, help=_demo("eval_samples")),
    on_policy: bool = typer.Option(False, "--on-policy", help=_demo("on_policy")),
    opd_steps: int | None = typer.Option(None, help=_demo("opd_steps")),
    seed: int | None = typer.Option(None, help=_demo("seed")),
    force: bool = typer.Option(False, "--force", help=_demo("force")),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    log_json: str | None = typer.Option(None, "--log-json", help=LOG_JSON_HELP),
) -> None:
    """Run generate -> curate -> sft -> eval offline on a built-in task: three students (four with --on-policy),
    one table."""
    import os

    # Before torch starts OpenMP: idle threads sleep instead of spinning, which keeps a busy shared CPU
    # (other jobs, CI neighbours) from slowing every tiny matrix product several-fold.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _log_json(log_json)
    values = {k: v for k, v in locals().items()
              if k not in ("set_", "run", "load_config", "DemoConfig", "os", "log_json")}
    values.update(quick=quick or None, force=force or None, on_policy=on_policy or None)
    run_demo(load_config(DemoConfig, None, set_ or [], values))


def _plan(name: str) -> str:
    return help_for(PlanConfig, name)


@app.command()
def plan(
    method: str | None = typer.Option(None, "--method", help=_plan("method")),
    teacher: str | None = typer.Option(None, help=_plan("teacher")),
    prompts: str | None = typer.Option(None, "--prompts", help=_plan("prompts")),
    samples: int | None = typer.Option(None, "--samples", "-k", help=_plan("samples")),
    student: str | None = typer.Option(None, "--student", help=_plan("student")),
    gpu: str | None = typer.Option(None, "--gpu", help=_plan("gpu")),
    nodes: int | None = typer.Option(None, "--nodes", help=_plan("nodes")),
    gpus_per_node: int | None = typer.Option(None, "--gpus-per-node", help=_plan("gpus_per_node")),
    price_per_gpu_hour: float | None = typer.Option(None, "--price-per-gpu-hour", help=_plan("price_per_gpu_hour")),
    from_dir: str | None = typer.Option(None, "--from", help=_plan("from_dir")),
    tasks: str | None = typer.Option(None, "--tasks", help=_plan("tasks")),
    eval_samples: int | None = typer.Option(None, "--eval-samples", help=_plan("eval_samples")),
    recipe_set: list[str] | None = typer.Option(None, "--recipe-set", help=_plan("recipe_overrides")),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON (for scripts) instead of tables."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override any assumption or option: --set "
                                          "sft_mfu=0.3 --set generate_tokens_per_s_per_node=8000 (repeatable)."),
) -> None:
    """Estimate a distillation run before it starts: tokens, GPU-hours, wall time and cost per stage, whether
    the student fits, every assumption with its source, and the commands to launch it. Writes nothing."""
    import json

    values = {"method": method, "teacher": teacher, "prompts": prompts, "samples": samples, "student": student, "gpu": gpu,
              "nodes": nodes, "gpus_per_node": gpus_per_node, "price_per_gpu_hour": price_per_gpu_hour,
              "from_dir": from_dir, "tasks": tasks.split(",") if tasks else None, "eval_samples": eval_samples,
              "recipe_overrides": recipe_set or None}
    result = run_plan(load_config(PlanConfig, None, set_ or [], values))
    if json_out:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_plan(result)


class _HubRetryNotices:
    """huggingface_hub says each retry in two lines ("'<error>' thrown while requesting HEAD <url>", then
    "Retrying in 2s [Retry 2/5]."): fold them into one that says what is retried and why."""

    def __init__(self) -> None:
        self.last_error = ""

    def filter(self, record) -> bool:
        message = record.getMessage()
        if "thrown while requesting" in message:
            self.last_error = message
            return False
        if message.startswith("Retrying in") and self.last_error:
            record.msg, record.args = f"hub request failed, {message[0].lower()}{message[1:-1]}: {self.last_error}", ()
        return True


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the typer app, turning DistillError into one line on stderr and exit status 2."""
    hide_library_bars()  # before torch, transformers, datasets are imported
    for name in ("huggingface_hub.utils._http", "huggingface_hub.hf_api"):
        filter_library_log(name, _HubRetryNotices)
    try:
        app(args=argv)
    except DistillError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as err:
        if is_main_process():
            print(f"stopped: {err}", file=sys.stderr)
        sys.exit(err.exit_status)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
