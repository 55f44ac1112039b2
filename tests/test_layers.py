"""The import graph is layered (../shared/LAYOUT.md, 2.4): core < grading, tasks < the pipeline stages (never each
other) < plan, demo < the CLI and the package root. Every import counts, at the top of a module or inside a
function, and no module reaches itself through its imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "distill"
# distill.<name> -> level; a module may import its own package's modules and any lower level
LEVELS = {
    "core": 0,
    "grading": 1, "tasks": 1,
    "generate": 2, "curate": 2, "sft": 2, "eval": 2,
    # on-policy distillation is the second training stage: it trains with sft's kit (launcher, LoRA and launch
    # specs, student template, checkpoint-and-stop callback, model loading) and reads prompts with generate's
    # loader, so it sits one step above them instead of copying them (a shared training package is the cleaner cut)
    "opd": 2.5,
    "plan": 3, "demo": 3,
}
TOP = 4  # distill/__init__.py, __main__.py, cli.py and the deprecated shims (answers, eval_tasks, code_tasks)


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The distill modules `path` imports anywhere in it (`from distill.x import name` counts x.name when that
    is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "distill"}
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "distill":
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
    return found


def package_of(module: str) -> str:
    """`core` for distill.core.x; "" for the root's own modules (distill, distill.cli, distill.__main__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def level(module: str) -> int:
    return -1 if module == "distill._version" else LEVELS.get(package_of(module), TOP)


def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports(path, modules) - {name} for name, path in modules.items()}


def test_every_import_goes_down_the_layers():
    wrong = []
    for name, targets in sorted(graph().items()):
        for target in sorted(targets):
            if package_of(name) != package_of(target) and level(target) >= level(name):
                wrong.append(f"{name} (level {level(name)}) imports {target} (level {level(target)})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_import_graph_has_no_cycle():
    edges = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_stage_modules_are_imported_by_from_never_by_dotted_import():
    """`distill.curate` is the stage function bound over its package, so `import distill.curate.worker` fails;
    `from distill.curate.worker import name` (or `from distill.curate import worker`) always works."""
    fence = re.compile(r"^\s*import distill\.\w+\.", re.M)
    files = [*PACKAGE.rglob("*.py"), *(REPO / "tests").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py"),
             *(REPO / "eval").rglob("*.py")]
    wrong = [f"{path.relative_to(REPO)}: {m.group(0).strip()}" for path in files for m in fence.finditer(path.read_text())]
    assert not wrong, "\n".join(wrong)


def test_the_old_module_names_import_the_new_modules_and_warn_once():
    """distill.answers, distill.eval_tasks and distill.code_tasks (which users' task folders import) keep working
    for a release: each is the moved module itself, and importing it warns once."""
    code = ("import warnings\nwith warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n    import distill.answers\n    from distill.answers import extract_boxed\n"
            "    import distill.answers\nfrom distill.grading import answers\n"
            "assert distill.answers is answers and extract_boxed is answers.extract_boxed\n"
            "print(sum(issubclass(w.category, DeprecationWarning) and 'distill.answers' in str(w.message) for w in caught))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr[-2000:]
    for old, new in (("eval_tasks", "eval/math_hooks.py"), ("code_tasks", "eval/code_hooks.py")):
        shim = (PACKAGE / old / "__init__.py").read_text()
        assert f"distill.{new[:-3].replace('/', '.')}" in shim and "DeprecationWarning" in shim


def test_every_package_is_listed_for_the_wheel():
    """pyproject.toml lists the packages (setuptools' find cannot see distill._eval); a new package must be added."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set(), f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
