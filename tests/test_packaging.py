"""A wheel install (`pip install distill`, no checkout) carries what the stages read at run time: the eval task
folders and published figures (as distill/_eval) and the chat and dataset-card templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from conftest import REPO, run_cli


def test_a_wheel_install_evaluates_with_the_task_folders_it_carries(tmp_path, tiny_model, shared_data):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            str(REPO), "-w", str(tmp_path / "wheel")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = (tmp_path / "wheel").glob("distill-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("distill/_eval/published.yaml", "distill/_eval/r1_math/_r1_math_yaml",
                 "distill/_eval/r1_math/distill_aime24.yaml", "distill/_eval/r1_math/utils.py",
                 "distill/_eval/arithmetic/distill_arithmetic.yaml", "distill/templates/chatml_r1.jinja",
                 "distill/templates/dataset_card.md.j2"):
        assert path in names, path

    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    # run from outside the checkout, importing the installed copy: eval finds its tasks inside the package
    env = {**os.environ, "PYTHONPATH": str(site), "DISTILL_EVAL_DIR": ""}
    probe = subprocess.run([sys.executable, "-c", "import importlib; print(importlib.import_module("
                            "'distill.eval.run').EVAL_DIR)"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == str(site / "distill" / "_eval"), probe.stderr[-2000:]
    out = tmp_path / "eval"
    proc = run_cli("eval", "--model", tiny_model, "--tasks", "math500", "--backend", "hf", "--limit", "2",
                   "--max-tokens", "4", "--data-dir", shared_data, "--out", out, cwd=tmp_path,
                   env={"PYTHONPATH": str(site), "DISTILL_EVAL_DIR": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"]["math500"]["n"] == 2
