"""The vllm backend where vLLM is missing (its real runs are in test_vllm.py). The dev setup installs vLLM, so the
CLI runs here as on a machine without it: a `sitecustomize` on its path marks the package absent, which is what
`importlib.util.find_spec` and `import vllm` then report."""

from __future__ import annotations

import os

from conftest import one_line_error, run_cli


def test_vllm_backend_without_vllm_says_what_to_do(tmp_path, parrot_model):
    hide = tmp_path / "no_vllm"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['vllm'] = None  # not installed\n")
    path = os.pathsep.join(p for p in (str(hide), os.environ.get("PYTHONPATH")) if p)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "problem": "x"}\n')
    res = run_cli("generate", "--prompts", prompts, "--out", tmp_path / "gen", "--backend", "vllm", "--model",
                  parrot_model, env={"PYTHONPATH": path})
    error = one_line_error(res)
    assert "needs vLLM" in error and "--backend openai" in error
