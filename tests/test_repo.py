"""The repository's promises about itself: CI runs exactly the README's test command."""

from __future__ import annotations

from conftest import REPO


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    demo, tests = (line.split("  #")[0].strip() for line in readme[:2])
    assert demo.startswith("./setup.sh") and demo.endswith("distill demo")
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [tests]
