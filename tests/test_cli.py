"""The command line: every command answers --help, and `distill --help` stays instant (no heavy imports)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import run_cli

HEAVY = ("torch", "transformers", "datasets", "trl", "lm_eval", "vllm", "pyarrow", "math_verify", "sympy", "aiohttp")


def test_importing_the_cli_pulls_in_no_heavy_library():
    code = f"import sys, distill, distill.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "", f"imported at start-up: {res.stdout.strip()}"


def test_stages_import_as_functions_with_the_cli_names():
    import inspect

    import distill

    for name in ("generate", "curate", "sft", "evaluate", "demo"):
        assert inspect.isfunction(getattr(distill, name)), name
    for name in ("GenerateConfig", "CurateConfig", "SFTRecipe", "EvalConfig"):
        assert inspect.isclass(getattr(distill, name)), name


@pytest.mark.parametrize("command", ["generate", "teachers", "curate", "sft", "eval", "demo"])
def test_every_command_has_help(command):
    res = run_cli(command, "--help")
    assert res.returncode == 0 and "Usage" in res.stdout


def test_generate_reads_a_yaml_config_and_options_win(tmp_path, parrot_model):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "problem": "What is 1 + 1?"}\n{"id": "b", "problem": "What is 2 + 2?"}\n')
    config = tmp_path / "gen.yaml"
    config.write_text(f"prompts: {prompts}\nbackend: transformers\nmodel: {parrot_model}\nmax_tokens: 8\n"
                      "num_samples: 3\n")
    res = run_cli("generate", "--config", config, "--out", tmp_path / "gen", "-k", "2", "--set", "max_tokens=64")
    assert res.returncode == 0, res.stderr
    from distill.core.manifest import read_manifest

    cfg = read_manifest(tmp_path / "gen")["config"]
    assert (cfg["num_samples"], cfg["max_tokens"], cfg["backend"]) == (2, 64, "transformers")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompt: x\n")
    res = run_cli("generate", "--config", bad, "--out", tmp_path / "g2")
    assert res.returncode == 2 and "unknown key prompt in GenerateConfig; valid keys: prompts, out" in res.stderr


def test_hub_retry_notices_are_folded_into_one_line(caplog):
    import logging

    from distill.cli import _HubRetryNotices

    logger = logging.getLogger("test_hub_retry_notices")
    logger.addFilter(_HubRetryNotices())
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("'[Errno -2] Name or service not known' thrown while requesting HEAD https://hf.co/x")
        logger.warning("Retrying in 1s [Retry 1/5].")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == [
        "hub request failed, retrying in 1s [Retry 1/5]: '[Errno -2] Name or service not known' thrown while "
        "requesting HEAD https://hf.co/x",
        "something else",
    ]


def test_version():
    from distill._version import __version__

    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"distill {__version__}"
