"""`distill plan` through the real CLI: the cost model's scaling laws, every recipe planned, --from reproducing
a real run's measured token counts, bad input, and back-tests against published distillation runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import ASSETS, REPO, run_cli

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def plan_json(*args: str) -> dict:
    result = run_cli("plan", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def planned(**kwargs) -> dict:
    """The same plan in-process (the cost model's own laws need no subprocess each)."""
    from distill.plan import plan
    from distill.plan.config import PlanConfig

    return plan(PlanConfig(**kwargs))["stages"]


def test_plan_is_a_function_and_a_command():
    import inspect

    import distill

    assert inspect.isfunction(distill.plan) and inspect.isclass(distill.PlanConfig)
    res = run_cli("plan", "--help")
    assert res.returncode == 0 and "--price-per-gpu-hour" in res.stdout and "--from" in res.stdout


# ---------------------------------------------------------------- the model's scaling laws


def test_twice_the_samples_doubles_generation_gpu_hours():
    one = planned(prompts="50000", samples=2, nodes=2)["generate"]
    two = planned(prompts="50000", samples=4, nodes=2)["generate"]
    assert two["completion_tokens"] == 2 * one["completion_tokens"]
    assert two["gpu_hours"] == pytest.approx(2 * one["gpu_hours"], rel=1e-9)


def test_kept_traces_stop_growing_at_curates_per_prompt_cap():
    four, eight = (planned(prompts="1000", samples=k, keep_rate=0.9)["curate"] for k in (4, 8))
    assert four["kept"] == 3600 and eight["kept"] == 4000  # at most 4 per prompt (recipes/curate/r1_math.yaml)
    assert eight["traces_per_kept"] == 2.0


def test_twice_the_gpus_halves_wall_time_at_equal_gpu_hours():
    small = planned(prompts="50000", student=str(REPO / "recipes/qwen1_5b.yaml"), nodes=2)
    large = planned(prompts="50000", student=str(REPO / "recipes/qwen1_5b.yaml"), nodes=4)
    for stage in ("generate", "sft", "eval"):
        assert large[stage]["gpu_hours"] == pytest.approx(small[stage]["gpu_hours"], rel=1e-6), stage
        assert large[stage]["wall_hours"] == pytest.approx(small[stage]["wall_hours"] / 2, rel=1e-6), stage
    assert small["generate"]["replicas"] == 1 and large["generate"]["replicas"] == 2  # R1 on H100: 2 nodes each
    odd = planned(prompts="50000", nodes=3)["generate"]  # the third node has no partner for a replica
    assert odd["replicas"] == 1 and "8 GPU(s) idle" in odd["warning"]


def test_training_cost_is_in_proportion_to_parameters_and_tokens():
    runs = {(name, prompts): planned(prompts=str(prompts), student=str(REPO / f"recipes/{name}.yaml"))["sft"]
            for name in ("qwen1_5b", "qwen7b") for prompts in (20000, 40000)}
    for (name, _prompts), sft in runs.items():
        six_n_t = sft["flops"] - sft["attention_flops"]
        assert six_n_t == pytest.approx(6 * sft["params"] * sft["tokens"], rel=1e-9)
        assert sft["params"] == {"qwen1_5b": 1_543_714_304, "qwen7b": 7_615_616_512}[name]  # the model cards' sizes
    for name in ("qwen1_5b", "qwen7b"):  # twice the data: twice the tokens and FLOPs
        assert runs[name, 40000]["flops"] == pytest.approx(2 * runs[name, 20000]["flops"], rel=1e-3)
    big, small = runs["qwen7b", 20000], runs["qwen1_5b", 20000]
    # same data: the 6N term scales with parameters, the attention term with layers x hidden (28 x 3584 vs 28 x 1536)
    assert big["tokens"] == small["tokens"]
    assert big["attention_flops"] / small["attention_flops"] == pytest.approx(3584 / 1536, rel=1e-9)
    assert big["gpu_hours"] > 4 * small["gpu_hours"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_plans(recipe: Path):
    result = plan_json("--prompts", "1000", "--student", str(recipe.relative_to(REPO)), "--nodes", "4")
    sft = result["stages"]["sft"]
    assert sft["tokens"] > 0 and sft["gpu_hours"] > 0 and sft["memory"]["per_gpu_gib"] > 0
    if recipe.stem != "tiny":  # the recipes' own hardware is at most 4 nodes of H100: each fits there
        assert sft["memory"]["fits"], sft["memory"]
    assert any(c.startswith(f"distill sft recipes/{recipe.name}") for c in result["commands"])


def test_table_prints_every_assumption_with_its_source_and_set_overrides_it():
    result = run_cli("plan", "--prompts", "1000", "--student", "recipes/qwen7b.yaml", "--set", "sft_mfu=0.2",
                     "--price-per-gpu-hour", "2.5")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("generate", "sft", "eval", "total", "GPU-hours", "open-r1", "set by you", "distill sft recipes/qwen7b"):
        assert text in out, text
    default = plan_json("--prompts", "1000", "--student", "recipes/qwen7b.yaml")
    lower = plan_json("--prompts", "1000", "--student", "recipes/qwen7b.yaml", "--set", "sft_mfu=0.169")
    assert default["assumptions"]["sft_mfu"]["source"].startswith("distill's reference figure")
    assert lower["stages"]["sft"]["gpu_hours"] == pytest.approx(2 * default["stages"]["sft"]["gpu_hours"], rel=1e-2)


def test_prompts_file_is_counted(shared_data: Path):
    result = plan_json("--prompts", str(shared_data / "math500.jsonl"), "--samples", "2", "--nodes", "2")
    assert result["inputs"]["prompts"] == 500 and result["stages"]["generate"]["traces"] == 1000
    length = result["assumptions"]["prompt_tokens_mean"]  # estimated from the file's own problems
    assert "math500.jsonl" in length["source"] and 30 < length["value"] < 200


# ---------------------------------------------------------------- --from a real run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real generate (the arithmetic program teacher: no model, seconds) and curate run."""
    from distill.tasks.arithmetic import SumTask

    root = tmp_path_factory.mktemp("run")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in SumTask().prompts("train", 150)))
    gen = run_cli("generate", "--teacher", "arithmetic", "--prompts", prompts, "--out", root / "generate", "-k", "2")
    assert gen.returncode == 0, gen.stderr
    cur = run_cli("curate", root / "generate", "--out", root / "curate", "--tokenizer", ASSETS / "tiny_tokenizer",
                  "--num-proc", "1", "--set", "contaminated.benchmarks=[]")
    assert cur.returncode == 0, cur.stderr
    return root


def test_from_a_finished_run_reproduces_its_measured_token_counts(finished_run: Path):
    from distill.core.shards import read_shards

    result = plan_json("--from", str(finished_run), "--teacher", "arithmetic", "--student", "recipes/tiny.yaml")
    traces = read_shards(finished_run / "generate" / "traces", "traces").to_pylist()
    report = json.loads((finished_run / "curate" / "curation_report.json").read_text())
    gen, cur, sft = (result["stages"][s] for s in ("generate", "curate", "sft"))
    assert result["inputs"]["prompts"] == 150 and gen["traces"] == len(traces) == 300
    assert gen["completion_tokens"] == sum(t["completion_tokens"] for t in traces)
    assert gen["prompt_tokens"] == sum(t["prompt_tokens"] for t in traces)
    assert cur["kept"] == report["counts"]["kept"]
    epochs = yaml.safe_load((REPO / "recipes" / "tiny.yaml").read_text())["sft"]["num_train_epochs"]
    assert sft["examples"] == report["counts"]["kept"] and sft["tokens"] == report["tokens"]["total"] * epochs
    for name in ("completion_tokens_mean", "keep_rate", "sft_tokens_mean"):
        assert result["assumptions"][name]["source"].startswith("measured: "), name
    assert gen["gpu_hours"] == 0  # a program teacher runs on CPU


def test_from_needs_a_run_directory(tmp_path: Path):
    result = run_cli("plan", "--from", tmp_path, "--prompts", "10")
    assert result.returncode == 2 and "no finished stage directory" in result.stderr


# ---------------------------------------------------------------- bad input


def test_unknown_gpu_lists_the_known_ones_and_how_to_give_one_by_hand():
    result = run_cli("plan", "--prompts", "1000", "--gpu", "tpu-v5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "h100" in result.stderr and "--set gpu_peak_tflops=" in result.stderr and "gpu_memory_gb" in result.stderr
    by_hand = plan_json("--prompts", "1000", "--gpu", "tpu-v5", "--set", "gpu_peak_tflops=459",
                        "--set", "gpu_memory_gb=95", "--set", "generate_tokens_per_s_per_node=4000", "--nodes", "2")
    assert by_hand["stages"]["generate"]["gpu_hours"] > 0


def test_a_recipe_that_fits_no_count_of_the_gpu_says_so():
    result = run_cli("plan", "--prompts", "1000", "--student", "recipes/qwen32b.yaml", "--gpu", "l40s",
                     "--recipe-set", "sft.max_length=400000")
    assert result.returncode == 0, result.stderr
    assert "does not fit on any count of 48 GB GPUs" in " ".join(result.stdout.split())
    fits_more = plan_json("--prompts", "1000", "--student", "recipes/llama70b.yaml", "--nodes", "1")["stages"]["sft"]
    assert not fits_more["memory"]["fits"] and fits_more["memory"]["fits_on_gpus"] > 8


def test_unknown_set_key_and_missing_prompts_are_one_line_errors():
    bad = run_cli("plan", "--prompts", "10", "--set", "sft_mfuu=0.3")
    assert bad.returncode == 2 and "sft_mfuu" in bad.stderr and "valid keys" in bad.stderr
    missing = run_cli("plan")
    assert missing.returncode == 2 and "--prompts" in missing.stderr


# ---------------------------------------------------------------- back-tests against published runs
#
# Each run: the published setup fed to the planner (samples, mean tokens per example, epochs, GPUs, sharding)
# and the GPU-hours its authors reported. recipes/README.md holds the same table; the last test keeps it true.
Z3 = {"distributed_type": "DEEPSPEED", "deepspeed_config": {"zero_stage": 3}}
Z3_OFFLOAD = {"distributed_type": "DEEPSPEED",
              "deepspeed_config": {"zero_stage": 3, "offload_optimizer_device": "cpu", "offload_param_device": "cpu"}}
FSDP = {"distributed_type": "FSDP"}
BACKTESTS = {
    # s1 paper (arXiv 2501.19393): Qwen2.5-32B-Instruct on s1K, 1,000 examples, 4.7M tokens in all (Table 5),
    # 5 epochs, batch 16 (one sequence per GPU), PyTorch FSDP, 32K length, "26 minutes on 16 NVIDIA H100 GPUs"
    # (= 6.9 GPU-hours, §C).
    "s1-32B": dict(model="Qwen/Qwen2.5-32B-Instruct", examples=1000, tokens=4700, epochs=5, max_length=32768,
                   nodes=2, accelerate=FSDP, reported=16 * 26 / 60, known=True),
    # same paper §5.1: the full 59K pool (59,029 examples, 3.6K thinking tokens on average, Table 6; ~0.4K of
    # question and answer added, an estimate) took 394 H100 GPU-hours with the same setup.
    "s1 59K-full": dict(model="Qwen/Qwen2.5-32B-Instruct", examples=59029, tokens=4000, epochs=5, max_length=32768,
                        nodes=2, accelerate=FSDP, reported=394, known=True),
    # Sky-T1-32B-Preview (novasky-ai.github.io/posts/sky-t1): 17K examples, 3 epochs, batch 96, "19 hours on 8
    # H100 with DeepSpeed Zero-3 offload" (LLaMA-Factory). Mean length not published: 5K assumed (QwQ traces
    # rewritten by GPT-4o-mini; the train script quoted in SkyThought issue #7 cuts at cutoff_len 8192).
    "Sky-T1-32B-Preview": dict(model="Qwen/Qwen2.5-32B-Instruct", examples=17000, tokens=5000, epochs=3,
                               max_length=8192, nodes=1, accelerate=Z3_OFFLOAD, reported=8 * 19, known=False),
    # Bespoke-Stratos-32B (huggingface.co/bespokelabs/Bespoke-Stratos-32B): 16.7K R1 traces, 3 epochs, "8xH100
    # ... for 27 hours", Sky-T1's recipe (ZeRO-3 offload). Length: R1's 6,000-token mean on the same pipeline's
    # OpenThoughts data (open-r1 update #1) + ~300 of prompt.
    "Bespoke-Stratos-32B": dict(model="Qwen/Qwen2.5-32B-Instruct", examples=16700, tokens=6300, epochs=3,
                                max_length=16384, nodes=1, accelerate=Z3_OFFLOAD, reported=8 * 27, known=False),
    # OpenThinker-32B (huggingface.co/open-thoughts/OpenThinker-32B): OpenThoughts-114k, 3 epochs, 16K context,
    # LLaMA-Factory, "On 4 nodes [8xH100 P5], this took around 90 hours". Length: R1's 6,000-token mean measured
    # on OpenThoughts itself (open-r1 update #1) + ~300 of prompt.
    "OpenThinker-32B": dict(model="Qwen/Qwen2.5-32B-Instruct", examples=114000, tokens=6300, epochs=3,
                            max_length=16384, nodes=4, accelerate=Z3, reported=32 * 90, known=True),
    # OpenThinker-7B (huggingface.co/open-thoughts/OpenThinker-7B): same data and setup, "four 8xH100 nodes ...
    # for 20 hours".
    "OpenThinker-7B": dict(model="Qwen/Qwen2.5-7B-Instruct", examples=114000, tokens=6300, epochs=3,
                           max_length=16384, nodes=4, accelerate=Z3, reported=32 * 20, known=True),
}
# OpenThinker's runs imply ~4-5% MFU on three setups (7B and 32B on H100, the 173k-unverified 32B on 384 A100s):
# their stack, not the cost model, is the difference (recipes/README.md).
OUTSIDE_2X = {"OpenThinker-32B", "OpenThinker-7B"}


def backtest(run: dict, tmp_path: Path, **assumptions: float) -> dict:
    from distill.plan import plan
    from distill.plan.config import PlanConfig

    accelerate = tmp_path / "accelerate.yaml"
    accelerate.write_text(yaml.safe_dump(run["accelerate"]))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"name": run["model"]}, "datasets": [{"path": "runs/data"}], "output_dir": "runs/sft/backtest",
        "sft": {"max_length": run["max_length"], "num_train_epochs": run["epochs"], "packing": False,
                "per_device_train_batch_size": 1},  # all of these trained one unpacked sequence per GPU
        "launch": {"accelerate_config": str(accelerate)},
        "drop_too_long": False}))  # LLaMA-Factory and s1's trainer cut long examples at the length, not drop them
    # the published dataset is what curate would have kept: prompts = examples, one sample each, all kept
    return plan(PlanConfig(teacher="qwq-32b", prompts=str(run["examples"]), samples=1, keep_rate=1.0,
                           student=str(recipe), nodes=run["nodes"], sft_tokens_mean=run["tokens"],
                           **assumptions))["stages"]["sft"]


@pytest.mark.parametrize("name", BACKTESTS)
def test_backtest_against_published_gpu_hours(name: str, tmp_path: Path):
    run = BACKTESTS[name]
    ratio = backtest(run, tmp_path)["gpu_hours"] / run["reported"]
    if name in OUTSIDE_2X:
        assert ratio < 0.5, f"{name} is now within 2x ({ratio:.2f}): update recipes/README.md and OUTSIDE_2X"
        if name.startswith("OpenThinker"):  # their stack's measured MFU, given by hand, reproduces them
            at_45 = backtest(run, tmp_path, sft_mfu=0.045)["gpu_hours"] / run["reported"]
            assert 0.9 <= at_45 <= 1.1, at_45
    else:
        assert 0.5 <= ratio <= 2, f"{name}: predicted / reported = {ratio:.2f}"


def test_recipes_readme_holds_the_backtest_table(tmp_path: Path):
    readme = (REPO / "recipes" / "README.md").read_text()
    for name, run in BACKTESTS.items():
        predicted = backtest(run, tmp_path)["gpu_hours"]
        row = re.search(rf"^\| {re.escape(name)} \|.*$", readme, re.MULTILINE)
        assert row, f"no row for {name} in recipes/README.md"
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        assert cells[-3:] == [f"{predicted:,.1f}", f"{run['reported']:,.1f}", f"{predicted / run['reported']:.2f}"], (
            name, cells, predicted)


# Generation: open-r1's OpenR1-Math-220k (huggingface.co/blog/open-r1/update-2): DeepSeek-R1 on 512 H100s, two
# solutions for each of 400k NuminaMath 1.5 problems (800k traces, at most 16K tokens each), SGLang at "25
# solutions per hour per H100", "300k problem solutions per day on 512 H100s" (so 800k traces = 32,768 GPU-hours).
# Mean length not published: R1's 6,000 (open-r1 update #1). February 2025 engines were ~15x slower than the
# late-2025 SGLang figure the planner defaults to: the test pins that gap, and that the run's own rate reproduces it.
OPENR1_GENERATION = dict(prompts=400_000, samples=2, nodes=64, reported=800 / 300 * 24 * 512,
                         rate_per_node=25 * 6000 / 3600 * 8)


def test_generation_backtest_against_open_r1(tmp_path: Path):
    from distill.plan import plan
    from distill.plan.config import PlanConfig

    run = OPENR1_GENERATION
    args = dict(prompts=str(run["prompts"]), samples=run["samples"], nodes=run["nodes"])
    default = plan(PlanConfig(**args))["stages"]["generate"]
    their_rate = plan(PlanConfig(**args, generate_tokens_per_s_per_node=run["rate_per_node"]))["stages"]["generate"]
    assert default["replicas"] == 32 and default["completion_tokens"] == 800_000 * 6000
    assert default["gpu_hours"] / run["reported"] < 0.1  # today's engines: the default is a late-2025 one
    assert 0.9 < their_rate["gpu_hours"] / run["reported"] < 1.1
    readme = (REPO / "recipes" / "README.md").read_text()
    row = f"| {default['gpu_hours']:,.1f} | {run['reported']:,.1f} | {default['gpu_hours'] / run['reported']:.2f} |"
    assert row in readme, row


# ---------------------------------------------------------------- --method opd


OPD_RECIPES = sorted((REPO / "recipes" / "opd").glob("*.yaml"))
QWQ_PAIR = "recipes/opd/qwen7b_qwq32b.yaml"


@pytest.mark.parametrize("recipe", OPD_RECIPES, ids=lambda p: p.name)
def test_every_opd_recipe_plans(recipe: Path):
    result = plan_json("--method", "opd", "--student", str(recipe.relative_to(REPO)), "--nodes", "2")
    opd = result["stages"]["opd"]
    assert opd["sequences"] > 0 and opd["gpu_hours"] > 0 and set(opd["parts"]) == {
        "rollouts", "teacher_scoring", "student_update"}
    assert "generate" not in result["stages"] and "eval" in result["stages"]  # no teacher traces to generate
    assert any(c.startswith(f"distill opd recipes/opd/{recipe.name}") for c in result["commands"])
    assert all(a["source"] for a in result["assumptions"].values())


def test_opd_plan_holds_the_teachers_gpus_and_compares_with_sft_on_the_same_prompts():
    result = plan_json("--method", "opd", "--student", QWQ_PAIR, "--nodes", "2", "--price-per-gpu-hour", "2")
    opd = result["stages"]["opd"]
    # the recipe: 200 steps x 4 samples per GPU on 8 student GPUs, QwQ-32B served on the 2 GPUs of its TP hint
    assert opd["sequences"] == 200 * 4 * 8 and opd["student_gpus"] == 8 and opd["teacher_gpus"] == 2
    assert opd["parts"]["teacher_scoring"]["gpus"] == 2 and opd["parts"]["rollouts"]["gpus"] == 8
    # the three parts run one after another; the teacher's GPUs are held (and paid) while the student works
    walls = sum(p["wall_hours"] for p in opd["parts"].values())
    assert opd["wall_hours"] == pytest.approx(walls) and opd["gpu_hours"] == pytest.approx(10 * walls)
    assert opd["gpu_hours"] > opd["busy_gpu_hours"]
    assert result["total"]["gpu_hours"] == pytest.approx(opd["gpu_hours"] + result["stages"]["eval"]["gpu_hours"])
    assert result["total"]["cost"] == pytest.approx(2 * result["total"]["gpu_hours"], rel=1e-3)
    sft = opd["sft_same_prompts"]
    assert sft["prompts"] == 6400 // 4 and 0 < sft["generate_gpu_hours"] < sft["gpu_hours"]
    # the 7B student's shape comes from the sft recipe that writes runs/sft/qwen7b, not from a download
    assert "recipes/qwen7b.yaml" in result["assumptions"]["student_shape"]["source"]
    assert result["assumptions"]["student_shape"]["value"].startswith("7.6")
    assert "vllm serve Qwen/QwQ-32B --tensor-parallel-size 2" in result["commands"][0]


def test_opd_plan_scales_with_steps_and_sample_length_and_says_so_in_the_table():
    base = plan_json("--method", "opd", "--student", QWQ_PAIR, "--nodes", "2")["stages"]["opd"]
    longer = plan_json("--method", "opd", "--student", QWQ_PAIR, "--nodes", "2",
                       "--recipe-set", "opd.max_steps=400")["stages"]["opd"]
    assert longer["busy_gpu_hours"] == pytest.approx(2 * base["busy_gpu_hours"], rel=1e-6)
    short = plan_json("--method", "opd", "--student", QWQ_PAIR, "--nodes", "2", "--set",
                      "opd_completion_tokens_mean=1024")["stages"]["opd"]
    assert short["parts"]["rollouts"]["gpu_hours"] == pytest.approx(base["parts"]["rollouts"]["gpu_hours"] / 4)
    table = run_cli("plan", "--method", "opd", "--student", QWQ_PAIR, "--nodes", "2")
    assert table.returncode == 0, table.stderr
    for text in ("teacher_scoring", "rollouts", "student_update", "(sft instead)", "rollout_mfu", "half of the"):
        assert text in table.stdout, text


def test_opd_plan_bad_input_is_one_line():
    too_few = run_cli("plan", "--method", "opd", "--student", QWQ_PAIR)  # 8 + 2 GPUs on one node of 8
    assert too_few.returncode == 2 and "--nodes" in too_few.stderr and "Traceback" not in too_few.stderr
    no_recipe = run_cli("plan", "--method", "opd")
    assert no_recipe.returncode == 2 and "--student recipes/opd/" in no_recipe.stderr
    wrong = run_cli("plan", "--method", "dpo", "--student", QWQ_PAIR)
    assert wrong.returncode == 2 and "dpo" in wrong.stderr
