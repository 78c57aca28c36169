"""
ruff over every Python file of the repository, with the rules of
pyproject.toml's [tool.ruff]: a finding fails the suite, so unused imports,
undefined names and shadowed names cannot pile up.
"""

import os
import subprocess
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ruff(*arguments, cwd=REPOSITORY):
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *arguments],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def test_noFindings():
    checked = ruff()
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_theRulesAreTheProjects(tmp_path):
    """
    The configuration is read and selects the rules it says: a file with
    one finding of each kind is refused.
    """
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "from twisted.internet.defer import TimeoutError\n"
        "\n"
        "\n"
        "def f(filter):\n"
        "    unused = 1\n"
        "    return undefined, filter, TimeoutError\n"
    )
    checked = ruff("--config", os.path.join(REPOSITORY, "pyproject.toml"), str(sample), cwd=tmp_path)
    assert checked.returncode == 1
    found = sorted(line.split(" ")[1] for line in checked.stdout.splitlines() if line.startswith("sample.py:"))
    assert found == ["A004", "F401", "F821", "F841"], checked.stdout
