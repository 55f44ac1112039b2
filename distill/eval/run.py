"""Stage 4, `distill eval`: a student on AIME and MATH-500 under the R1 protocol, beside the published numbers.

    distill eval --model runs/sft/final --tasks aime,math500 --data-dir ../shared/data
    evaluate(EvalConfig(model="runs/sft/final", tasks=["aime", "math500"], out="runs/eval"))

Reads a model (a local directory, e.g. an sft output, or a hub id) and the lm-eval tasks under `eval/`
(`aime` = distill_aime24 + distill_aime25, `math500` = distill_math500; any `eval/<family>/distill_<name>.yaml`
is found by `<name>`). Writes to OUT: `results.json` (metrics per task and the protocol), `samples/<task>.jsonl`
(every sample: id, response, extracted answer, verdict), `report.md` + `report.png` (beside the published
DeepSeek-R1-Distill and DeepSeek-R1 numbers), `manifest.json` (lineage back through sft, curate, generate).
Tasks run one after another and each is saved when done: re-running the same command skips finished tasks.

How the model is prompted and graded is resolved from the model before anything runs (distill.eval.prompting):
`--reasoning auto` reads its chat template, tokenizer and sft manifest to decide whether it thinks in `<think>`
blocks (prefill and answer after `</think>`) or not (no prefill, the last box of the whole response); a system
turn its chat template adds on its own is said in the log, kept or cut (`--default-system`), and recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.core.backend_common import backend_name, has_cuda, vllm_installed
from distill.core.chat_template import PromptRenderer
from distill.core.errors import DistillError, Interrupted
from distill.core.log import filter_library_log, get_logger, progress
from distill.core.manifest import (
    DirLock,
    is_complete,
    manifest_sha256,
    now,
    read_manifest,
    spelled_out,
)
from distill.core.model_source import local_model
from distill.core.paths import eval_dir
from distill.core.preempt import GraceExpired, StopOnSignal
from distill.core.stage_dirs import RESULTS, SAMPLES
from distill.eval.baseline import read_eval
from distill.eval.budget import budget_curve
from distill.eval.choice_hooks import CHOICE_USER_PROMPT, score_choices
from distill.eval.choice_hooks import COLUMNS as CHOICE_COLUMNS
from distill.eval.code_hooks import clear_cache as clear_code_cache
from distill.eval.code_hooks import score_problem as score_code
from distill.eval.config import EvalConfig
from distill.eval.journal import SampleJournal
from distill.eval.math_hooks import add_think_prefill
from distill.eval.metrics import clear_cache, score_problem, summarize, with_lengths
from distill.eval.models import LMSpec, check_model_path, context_limit, open_model, use_template
from distill.eval.prompting import Prompting, resolve_prompting
from distill.eval.provenance import task_provenance
from distill.eval.report import write_report
from distill.eval.results import (
    finish_results,
    model_manifest_dir,
    print_eval_summary,
    read_results,
    write_eval_manifest,
    write_json,
    write_jsonl,
)
from distill.eval.variance import wide_stderr_warning
from distill.grading.sandbox import check_sandbox

EVAL_DIR = eval_dir()
TASK_PREFIX = "distill_"


@dataclass
class TaskRef:
    """One task to run: its short name (results key, samples file) and its lm-eval config."""

    short: str
    name: str
    config: dict[str, Any]  # the YAML config with includes resolved (functions unresolved)

    @property
    def data_file(self) -> str | None:
        return (self.config.get("metadata") or {}).get("data_file")


JOURNAL = ".journal"  # OUT/.journal/<task>.jsonl: the finished samples of the task in hand (distill.eval.journal)


def run(cfg: EvalConfig) -> Path:
    started = now()
    out = Path(cfg.out or Path("runs") / "eval" / Path(cfg.model.rstrip("/")).name)
    check_model_path(cfg.model)  # said first, before any task or data is looked up
    if cfg.baseline:
        read_eval(Path(cfg.baseline).expanduser())  # a wrong --baseline is said before hours of sampling
    source = model_manifest_dir(cfg.model)
    tokenizer, prompting = resolve_prompting(cfg, read_manifest(source) if source else None)
    if cfg.budgets and prompting.reasoning == "off":
        raise DistillError(f"--budgets cuts thinking, but '{cfg.model}' is evaluated with reasoning off "
                           f"({prompting.why}); pass --reasoning on, or drop --budgets")
    manager, refs = resolve_tasks(cfg, prompting)
    check_data(cfg, refs)
    if any(is_code_task(r) for r in refs):
        check_sandbox()  # code tasks score in the sandbox: no bubblewrap, one line, before the model loads
    # SIGTERM: the task in hand is abandoned at once; the chunks of it that finished are in its journal, and the
    # re-run generates only the rest (distill.eval.journal)
    with DirLock(out, "distill eval"), StopOnSignal(0.01, "the finished tasks") as stop:
        # ------------------------------------------------------------ what is left to do
        results = read_results(out)
        todo = plan(results, refs, cfg, out, prompting)
        curves = [r for r in refs if missing_budgets(cfg, results, r)]  # --budgets points not measured yet
        # ------------------------------------------------------------ generate and score
        if todo or curves:
            try:
                run_tasks(cfg, manager, todo, out, results, tokenizer, prompting, stop, curves)
            except GraceExpired:
                pass
        if stop.requested:
            stop_eval(out, cfg, results, started, refs, stop.signum)
        # ------------------------------------------------------------ report and lineage
        finish_results(out, cfg, results, prompting)
        write_report(out, results)
        # a re-run that evaluated nothing leaves a complete manifest as it was (anything downstream holds its hash)
        if todo or curves or not is_complete(out):
            write_eval_manifest(out, cfg, results, started)
    print_eval_summary(out, results, [r.short for r in refs])
    return out


# ---------------------------------------------------------------- tasks


class _DropCustomDatasetHint:
    """lm-eval warns on every load of a task whose dataset is built in code (ours all are, so that --data-dir
    works offline) that kwargs could be passed with --metadata: advice for lm_eval's own CLI, noise in ours."""

    def filter(self, record) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


def resolve_tasks(cfg: EvalConfig, prompting: Prompting | None = None):
    """Short names -> lm-eval tasks found under eval/ (and --task-dirs): `aime` is the tag distill_aime."""
    from lm_eval.tasks import TaskManager

    dirs = [EVAL_DIR, *map(Path, cfg.task_dirs)]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise DistillError(f"task folder {missing[0]} not found; set DISTILL_EVAL_DIR to the eval/ folder of a "
                           "distill checkout, or fix --task-dirs")
    filter_library_log("lm_eval.api.task", _DropCustomDatasetHint)
    manager = TaskManager(include_path=[str(d) for d in dirs], include_defaults=False,
                          metadata=task_metadata(cfg, prompting or Prompting()))
    index = manager.task_index
    refs: dict[str, TaskRef] = {}
    for name in cfg.tasks:
        full = next((n for n in (TASK_PREFIX + name, name) if n in index), None)
        if full is None:
            known = sorted({_short(n) for n in manager.all_subtasks} | {_short(n) for n in manager.all_tags})
            raise DistillError(f"unknown task '{name}'; choose from {', '.join(known)} (tasks are "
                               f"eval/<family>/distill_<name>.yaml)")
        members = sorted(index[full].tags) if full in manager.all_tags else [full]
        for member in members:
            refs.setdefault(member, TaskRef(_short(member), member, dict(index[member].cfg or {})))
    return manager, list(refs.values())


def _short(name: str) -> str:
    return name[len(TASK_PREFIX):] if name.startswith(TASK_PREFIX) else name


def task_metadata(cfg: EvalConfig, prompting: Prompting) -> dict[str, Any]:
    """The run-time knobs every task reads (distill.eval.math_hooks.protocol_config)."""
    return {
        "samples": cfg.samples,
        "max_tokens": cfg.max_tokens,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "reasoning": prompting.reasoning,
        "think_prefill": prompting.think_prefill,
        "drop_system_block": prompting.drop_block,
        "data_dir": str(Path(cfg.data_dir).expanduser().resolve()) if cfg.data_dir else None,
        # read by the livecodebench task's loader (eval/livecodebench/utils.py), ignored by the others
        "livecodebench_window": cfg.livecodebench.window,
        "livecodebench_release": cfg.livecodebench.release,
    }


def check_data(cfg: EvalConfig, refs: list[TaskRef]) -> None:
    if cfg.data_dir is None:
        return
    data_dir = Path(cfg.data_dir).expanduser()
    if not data_dir.is_dir():
        raise DistillError(f"--data-dir {cfg.data_dir} is not a directory; pass the folder holding "
                           f"{', '.join(r.data_file for r in refs if r.data_file)}")
    for ref in refs:
        if not ref.data_file:
            raise DistillError(f"task {ref.name} names no metadata.data_file, so it cannot read --data-dir")
        if not (data_dir / ref.data_file).is_file():
            fields = "the hub's columns: " + ", ".join(CHOICE_COLUMNS) if is_choice_task(ref) else "id, problem, answer"
            raise DistillError(f"{data_dir / ref.data_file} not found: --data-dir must hold {ref.data_file} "
                               f"(JSON lines with {fields}) for task {ref.short}")


def task_fingerprint(cfg: EvalConfig, ref: TaskRef, prompting: Prompting | None = None) -> dict[str, Any]:
    """Everything that decides a task's numbers: a re-run with the same fingerprint reuses them."""
    source = model_manifest_dir(cfg.model)
    gen = ref.config.get("generation_kwargs") or {}
    prompting = prompting or Prompting()
    return {
        "model": spelled_out(cfg.model),
        "model_manifest_sha256": manifest_sha256(source) if source else None,
        "task_version": (ref.config.get("metadata") or {}).get("version"),
        "k": cfg.samples or int(ref.config.get("repeats", 1)),
        "max_tokens": cfg.max_tokens,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "reasoning": prompting.reasoning,
        "think_prefill": prompting.think_prefill,
        "system_prompt": prompting.system_prompt,
        **({"chat_template": cfg.chat_template} if cfg.chat_template else {}),  # absent: old results still match
        "limit": cfg.limit,
        "data": data_source(cfg, ref),
        "stop": gen.get("until", []),
        "seed": cfg.seed,
    }


def data_source(cfg: EvalConfig, ref: TaskRef) -> str:
    # a windowed task's numbers depend on its window: it is part of the data, so of the fingerprint
    window = (f", contest dates {cfg.livecodebench.window}"
              if "livecodebench_window" in (ref.config.get("metadata") or {}) else "")
    if cfg.data_dir:
        return str((Path(cfg.data_dir).expanduser() / ref.data_file).resolve()) + window
    if window:
        return f"{(ref.config.get('metadata') or {}).get('hub')} {cfg.livecodebench.release}{window}"
    name = f", config {ref.config['dataset_name']}" if ref.config.get("dataset_name") else ""
    return f"{ref.config.get('dataset_path')} ({ref.config.get('test_split')} split{name})"


def plan(results: dict[str, Any], refs: list[TaskRef], cfg: EvalConfig, out: Path,
         prompting: Prompting | None = None) -> list[TaskRef]:
    """Tasks still to run: a task finished with the same fingerprint is kept; another fingerprint is refused
    unless --force (its numbers would silently be replaced)."""
    model_here = spelled_out(cfg.model)
    others = sorted(n for n, t in results["tasks"].items() if t.get("fingerprint", {}).get("model") != model_here)
    if others and not cfg.force:
        model = results["tasks"][others[0]].get("fingerprint", {}).get("model")
        raise DistillError(f"{out} holds results of another model ({model}: {', '.join(others)}); use a new --out, "
                           "or --force to drop them")
    for name in others:  # --force: one report per model
        del results["tasks"][name]
        (out / SAMPLES / f"{name}.jsonl").unlink(missing_ok=True)
    todo = []
    for ref in refs:
        old = results["tasks"].get(ref.short)
        new = task_fingerprint(cfg, ref, prompting)
        if old:  # results from before eval had modes were all made reasoning on, with no system prompt known
            old["fingerprint"] = {"reasoning": "on", "system_prompt": None, **old.get("fingerprint", {})}
        if old and old.get("fingerprint") == new:
            get_logger().info(f"{ref.short}: already evaluated with this protocol; keeping it")
            continue
        if old and not cfg.force:
            before = old.get("fingerprint", {})
            diff = "; ".join(f"{k}: {before.get(k)!r} -> {v!r}" for k, v in new.items() if before.get(k) != v)
            raise DistillError(f"{out} holds {ref.short} results made with another protocol ({diff}); use a new "
                               "--out, or --force to replace them")
        todo.append(ref)
    return todo


# ---------------------------------------------------------------- running


def stop_eval(out: Path, cfg: EvalConfig, results: dict[str, Any], started: str, refs: list[TaskRef],
              signum: int) -> None:
    """The manifest of a stopped run (results.json holds the finished tasks), then Interrupted."""
    write_eval_manifest(out, cfg, results, started, status="interrupted")
    left = [r.short for r in refs if r.short not in results["tasks"]]
    raise Interrupted(signum, f"finished tasks are saved in {out / 'results.json'}; re-run the same command to "
                      f"evaluate {', '.join(left) or 'nothing more'}")


def run_tasks(cfg: EvalConfig, manager, todo: list[TaskRef], out: Path, results: dict[str, Any], tokenizer,
              prompting: Prompting, stop: StopOnSignal | None = None, curves: list[TaskRef] = ()) -> None:
    """Load the tasks (data first: cheap errors before the model loads), then the model, then run each task
    and save it at once; then the --budgets curves still missing."""
    tasks = load_tasks(manager, list({r.name: r for r in [*todo, *curves]}.values()))
    spec = model_spec(cfg, tasks, tokenizer, prompting)
    lm = open_model(spec)  # a refusal here or in model_spec is the only line printed
    use_template(lm, spec)
    get_logger().info(f"reasoning {prompting.reasoning}: {prompting.why}")
    PromptRenderer(tokenizer, prompting.default_system)  # says so, once, when the template adds a system turn
    results["backend"] = spec.backend
    for ref in todo:
        if stop is not None and stop.requested:
            return
        journal = SampleJournal(out / JOURNAL / f"{ref.short}.jsonl", task_fingerprint(cfg, ref, prompting))
        if journal.done:
            get_logger().info(f"{ref.short}: {len(journal.done):,} samples finished by an earlier run are in its "
                              "journal; generating the rest")
        lm.journal = journal
        results["tasks"][ref.short] = run_task(cfg, lm, manager, tasks[ref.name], ref, tokenizer, out, prompting)
        lm.journal = None
        results["tasks"][ref.short]["resumed_samples"] = journal.resumed
        results["tasks"][ref.short]["fingerprint"] = task_fingerprint(cfg, ref, prompting)
        results["tasks"][ref.short]["provenance"] = task_provenance(lm, spec, tasks[ref.name], results["tasks"][ref.short])
        warning = wide_stderr_warning(ref.short, results["tasks"][ref.short])
        if warning:
            get_logger().warning(warning)
        write_json(out / RESULTS, results)  # a crash in the next task keeps this one
        journal.remove()
        clear_cache()
        clear_code_cache()
    for ref in curves:
        if stop is not None and stop.requested:
            return
        run_budgets(cfg, lm, tasks[ref.name], ref, tokenizer, out, results, prompting)


# ---------------------------------------------------------------- accuracy against thinking budget


def missing_budgets(cfg: EvalConfig, results: dict[str, Any], ref: TaskRef) -> list[int]:
    have = (results["tasks"].get(ref.short) or {}).get("budget_curve") or {}
    return [b for b in cfg.budgets if str(b) not in have]


def run_budgets(cfg: EvalConfig, lm, task, ref: TaskRef, tokenizer, out: Path, results: dict[str, Any],
                prompting: Prompting) -> None:
    """The budget-forced points of one task (distill.eval.budget), from the prompts its unforced run sent."""
    record = results["tasks"][ref.short]
    budgets = missing_budgets(cfg, results, ref)
    prompts = {}
    for line in (out / SAMPLES / f"{ref.short}.jsonl").read_text().splitlines():
        row = json.loads(line)
        prompts.setdefault(str(row["id"]), row["prompt"])
    docs = list(task.eval_docs)[:cfg.limit] if cfg.limit else list(task.eval_docs)
    items = [(doc, prompts[str(doc["id"])]) for doc in docs if str(doc["id"]) in prompts]
    reasoning = prompting.reasoning == "on"
    code, choice = is_code_task(ref), is_choice_task(ref)

    def score(responses: list[str], doc: dict[str, Any]):
        if choice:
            return score_choices(responses, doc["answer"], reasoning)
        return score_doc(code, responses, doc, reasoning)[0]

    k = record["k"]
    total = sum(budgets) * len(items) * k  # each B fits in --max-tokens (EvalConfig checks)
    with progress(f"budgets {ref.short}", total=len(budgets) * len(items) * k, unit="samples") as bar:
        bar.note = f"budgets {','.join(map(str, budgets))}; up to {total:,} thinking tokens"
        lm.progress = bar
        try:
            curve = budget_curve(
                lm, items, budgets, cfg.budget_answer_tokens, k,
                {"temperature": cfg.temperature, "top_p": cfg.top_p}, out / JOURNAL,
                task_fingerprint(cfg, ref, prompting), score,
                lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]), ref.short)
        finally:
            lm.progress = None
    record["budget_curve"] = dict(sorted({**(record.get("budget_curve") or {}), **curve}.items(),
                                         key=lambda kv: int(kv[0])))
    record["budget_answer_tokens"] = cfg.budget_answer_tokens
    write_json(out / RESULTS, results)
    clear_cache()
    clear_code_cache()


def load_tasks(manager, refs: list[TaskRef]) -> dict[str, Any]:
    try:
        return manager.load([r.name for r in refs])["tasks"]
    except DistillError:  # a hook's own one-line error (a data file missing a column)
        raise
    except Exception as err:  # noqa: BLE001 - datasets/hub raise many kinds; all mean "could not load the data"
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        gated = [r for r in refs if (r.config.get("metadata") or {}).get("gated")]
        if gated and _is_gated_error(err):
            ref = gated[0]
            raise DistillError(
                f"{ref.config.get('dataset_path')} (task {ref.short}) is gated on the hub and this machine has no "
                f"access: accept its terms at https://huggingface.co/datasets/{ref.config.get('dataset_path')}, then "
                f"log in (`huggingface-cli login`, or set HF_TOKEN); or pass --data-dir DIR with {ref.data_file}"
            ) from None
        files = ", ".join(r.data_file for r in refs if r.data_file)
        hint = " (gated datasets also need their terms accepted and HF_TOKEN)" if gated else ""
        raise DistillError(f"could not load the eval data of {', '.join(r.short for r in refs)} ({first}); "
                           f"pass --data-dir with {files} when offline{hint}") from None


def _is_gated_error(err: BaseException) -> bool:
    """The hub refused a gated dataset (no token, or its terms not accepted), through whichever library."""
    while err is not None:
        if type(err).__name__ == "GatedRepoError" or "gated" in str(err).lower():
            return True
        err = err.__cause__ or err.__context__
    return False


def model_spec(cfg: EvalConfig, tasks: dict[str, Any], tokenizer, prompting: Prompting):
    """The backend and context length: long enough for the longest prompt plus --max-tokens, checked
    against what the model supports, so no prompt is truncated."""
    longest = max(prompt_tokens(tokenizer, task, cfg, prompting) for task in tasks.values())
    needed = longest + cfg.max_tokens
    backend = choose_backend(cfg)
    if cfg.vllm and backend != "vllm":
        raise DistillError(f"--set vllm.* is for --backend vllm, not {backend}; drop it or pass --backend vllm")
    if backend != "openai":
        limit = context_limit(cfg.model, cfg.trust_remote_code)
        if limit is not None and longest >= limit:
            raise DistillError(f"the longest prompt alone ({longest} tokens) fills the {limit} positions of "
                               f"'{cfg.model}'; this model cannot take these tasks (give it more positions, "
                               "e.g. max_position_embeddings in its sft recipe, or evaluate it on shorter tasks)")
        if limit is not None and needed > limit:
            raise DistillError(f"the longest prompt ({longest} tokens) + --max-tokens {cfg.max_tokens} = {needed} "
                               f"exceeds the {limit} positions of '{cfg.model}'; pass --max-tokens {limit - longest} "
                               "or less (the report then notes the shorter budget), or give the model more positions")
    if cfg.max_model_len is not None and cfg.max_model_len < needed:
        raise DistillError(f"--max-model-len {cfg.max_model_len} < longest prompt {longest} + --max-tokens "
                           f"{cfg.max_tokens}; prompts would be truncated: raise it or lower --max-tokens")
    return LMSpec(
        model=local_model(cfg.model), backend=backend, max_model_len=cfg.max_model_len or needed,
        max_tokens=cfg.max_tokens,
        seed=cfg.seed, dtype=cfg.dtype, batch_size=cfg.batch_size, tensor_parallel=cfg.tensor_parallel,
        data_parallel=cfg.data_parallel, gpu_memory_utilization=cfg.gpu_memory_utilization,
        base_url=cfg.base_url, served_model=cfg.served_model, api_key_env=cfg.api_key_env,
        concurrency=cfg.concurrency, engine_args=dict(cfg.vllm), trust_remote_code=cfg.trust_remote_code,
        chat_template=cfg.chat_template, journal_chunk=cfg.journal_chunk,
    )


def prompt_tokens(tokenizer, task, cfg: EvalConfig, prompting: Prompting) -> int:
    """Tokens of the longest prompt of a task, rendered as the backends will render it."""
    render = PromptRenderer(tokenizer, prompting.default_system, say=False)
    docs = list(task.eval_docs)[: cfg.limit] if cfg.limit else list(task.eval_docs)
    longest = 0
    for doc in docs:
        # the task's own prompt builder: a code task wraps its problem differently from the math tasks
        text = render([{"role": "user", "content": task.doc_to_text(doc)}])
        text = add_think_prefill(text) if prompting.think_prefill else text
        longest = max(longest, len(tokenizer(text, add_special_tokens=False).input_ids))
    return longest


def choose_backend(cfg: EvalConfig) -> str:
    if cfg.backend:
        return backend_name(cfg.backend, "hf")
    if cfg.base_url:
        return "openai"
    if vllm_installed() and has_cuda():
        return "vllm"
    get_logger().info("vLLM with a GPU is not available here: using the hf backend (fine for small models)")
    return "hf"


def _quiet_git_probe() -> None:
    """lm-eval records the git hash of the working directory by running git with stderr attached, which prints
    'fatal: not a git repository' in the middle of our progress outside a checkout; ask git quietly instead."""
    import subprocess

    import lm_eval.evaluator

    def git_hash() -> str | None:
        try:
            res = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True)
        except OSError:  # no git on this machine
            return None
        return (res.stdout.strip() or None) if res.returncode == 0 else None

    lm_eval.evaluator.get_git_commit_hash = git_hash


def run_task(cfg: EvalConfig, lm, manager, task, ref: TaskRef, tokenizer, out: Path,
             prompting: Prompting) -> dict[str, Any]:
    """Generate k samples per problem through lm-eval, then write samples/<task>.jsonl and the metrics."""
    import lm_eval

    _quiet_git_probe()
    k = task.config.repeats
    problems = min(cfg.limit, len(task.eval_docs)) if cfg.limit else len(task.eval_docs)
    with progress(f"eval {ref.short}", total=problems * k, unit="samples") as bar:
        lm.progress = bar
        if lm.journal is not None and lm.journal.done:
            bar.note = f"{len(lm.journal.done):,} in the journal"
        try:
            raw = lm_eval.simple_evaluate(
                model=lm, tasks=[task], task_manager=manager, limit=cfg.limit, apply_chat_template=True,
                log_samples=True, random_seed=cfg.seed, numpy_random_seed=cfg.seed, torch_random_seed=cfg.seed,
            )
        except Exception as err:
            if cfg.backend == "openai" or cfg.base_url:
                if _is_network_error(err):
                    raise DistillError(f"the server at {cfg.base_url} failed during {ref.short} ({type(err).__name__}: "
                                       f"{str(err)[:200]}); finished tasks are saved: re-run to resume") from None
            raise
        finally:
            lm.progress = None
    return score_and_write(raw, task, ref, tokenizer, getattr(lm, "token_counts", {}), cfg, out, prompting)


def response_tokens(counts: dict[str, int], responses: list[str], tokenizer) -> list[int]:
    """Tokens of each response as the backend counted them while generating; re-tokenized where it did not."""
    missing = [r for r in responses if r not in counts]
    fresh = dict(zip(missing, map(len, tokenizer(missing, add_special_tokens=False).input_ids), strict=True)) \
        if missing else {}
    return [counts[r] if r in counts else fresh[r] for r in responses]


def _is_network_error(err: BaseException) -> bool:
    """A failure of the connection or the server (after lm-eval's retries), not a bug of ours."""
    import asyncio

    return isinstance(err, (OSError, asyncio.TimeoutError)) or type(err).__module__.split(".")[0] in (
        "aiohttp", "tenacity", "requests", "urllib3")


def score_and_write(raw: dict[str, Any], task, ref: TaskRef, tokenizer, lm_counts: dict[str, int],
                    cfg: EvalConfig, out: Path, prompting: Prompting) -> dict:
    """Per-sample records (the same cached verdicts process_results computed) and the task's metrics."""
    reasoning = prompting.reasoning == "on"
    records, scores, tokens = [], [], []
    code = is_code_task(ref)
    for sample in sorted(raw["samples"][ref.name], key=lambda s: s["doc_id"]):
        doc, responses = sample["doc"], list(sample["resps"][0])
        score, outcomes = (score_choices(responses, doc["answer"], reasoning), []) if is_choice_task(ref) \
            else score_doc(code, responses, doc, reasoning)
        lengths = response_tokens(lm_counts, responses, tokenizer)
        if not reasoning:  # no think block to miss: cut off means it used the whole budget
            score = with_lengths(score, lengths, cfg.max_tokens)
        scores.append(score)
        tokens.append(lengths)
        prompt = sample["arguments"][0][0]
        for i, response in enumerate(responses):
            records.append({
                "id": doc["id"], "sample": i, "reference": doc.get("answer"), "answer": score.answers[i],
                "correct": score.correct[i], "truncated": score.truncated[i], "tokens": lengths[i],
                **(outcomes[i] if code else {}), "prompt": prompt, "response": response,
            })
    write_jsonl(out / SAMPLES / f"{ref.short}.jsonl", records)
    metrics = summarize(scores, tokens, max_tokens=cfg.max_tokens)
    reported = raw["results"][ref.name].get("pass@1,none")
    assert reported is None or abs(reported - metrics["pass@1"]) < 1e-9, (
        f"lm-eval's pass@1 {reported} differs from the samples' {metrics['pass@1']}: scoring is not deterministic"
    )
    grader = {"grader": CODE_GRADER} if code else {"grader": CHOICE_GRADER} if is_choice_task(ref) else {}
    # a multiple-choice task's own user turn (the protocol block's user_prompt is the math one) and its key's seed
    shuffle = {"shuffle_seed": getattr(task, "shuffle_seed", None), "user_prompt": CHOICE_USER_PROMPT} \
        if is_choice_task(ref) else {}
    return {"task": ref.name, "version": task.VERSION, "data": data_source(cfg, ref), "limit": cfg.limit,
            **grader, **shuffle, **metrics}


CODE_GRADER = ("sandbox: the last ```python block after </think> runs against the problem's tests under bubblewrap "
               "(no network, read-only root, CPU/memory/process/output limits); correct = every test passed")


CHOICE_GRADER = ("letter: the last \\boxed{} holding one letter A-D (or the last 'Answer: X') after </think>, against "
                 "the letter the correct choice was shuffled to (shuffle_seed)")


def is_choice_task(ref: TaskRef) -> bool:
    """A multiple-choice task (metadata grader: choice, as eval/gpqa sets): a letter against the shuffled key."""
    return (ref.config.get("metadata") or {}).get("grader") == "choice"


def is_code_task(ref: TaskRef) -> bool:
    """A task scored by running programs (metadata grader: code, as eval/humaneval sets) instead of the math grader."""
    return (ref.config.get("metadata") or {}).get("grader") == "code"


def score_doc(code: bool, responses: list[str], doc: dict[str, Any], reasoning: bool = True):
    """(ProblemScore, per-sample outcome fields) by the task's grader; for code, each sample's sandbox outcome."""
    if not code:
        return score_problem(responses, doc["answer"], reasoning=reasoning), []

    score, verdicts = score_code(responses, doc)
    return score, [{"outcome": v.status, "detail": v.detail, "failed_test": v.test} for v in verdicts]
