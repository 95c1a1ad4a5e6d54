"""The README's examples run as written."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

README = pathlib.Path(__file__).parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_usage_example_prints_what_its_comments_say(tmp_path: pathlib.Path) -> None:
    usage = _python_blocks()[0]
    # The example uses the default file:// state directory; keep it private.
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", usage],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[:3] == ["True", "True", "['host1', 'host2']"], result.stdout
    assert lines[3].startswith("host1 True {'version': '1.2'} ")
    assert lines[4].startswith("host2 True {} ")


def test_testing_example_passes() -> None:
    namespace: dict[str, object] = {}
    exec(_python_blocks()[1], namespace)  # noqa: S102 - our own README
    test = namespace["test_crashed_compute_goes_down"]
    assert callable(test)
    test()


@pytest.mark.parametrize("command", ["bash tools/demo.sh", "bash tools/run-tests.sh"])
def test_readme_commands_exist(command: str) -> None:
    assert command in README.read_text()
    script = README.parent / command.split()[1]
    assert script.is_file()


def test_readme_says_how_to_run_the_command_after_the_demo() -> None:
    text = README.read_text()
    after_demo = text.split("bash tools/demo.sh", 1)[1].split("```", 2)[1]
    assert ".venv/bin/servicegroup" in after_demo
    assert ". .venv/bin/activate" in after_demo


def _stub_checkout(tmp_path: pathlib.Path, script: str) -> pathlib.Path:
    """A checkout holding ``tools/<script>`` and a setup-venv.sh stub.

    The stub records the extras it was asked for and installs fake
    ``servicegroup`` and ``sphinx-build`` commands that record their
    arguments, so the scripts' logic runs without pip or a network.
    """
    root = tmp_path / "checkout"
    (root / "tools").mkdir(parents=True)
    (root / "tools" / script).write_text((README.parent / "tools" / script).read_text())
    (root / "tools" / "setup-venv.sh").write_text(
        textwrap.dedent(
            """\
            set -eu
            echo "${SERVICEGROUP_EXTRAS:-}" >> setup-extras.log
            mkdir -p .venv/bin
            for tool in python servicegroup; do
              printf '#!/bin/sh\\necho "$0 $*" >> calls.log\\n' > .venv/bin/$tool
              chmod +x .venv/bin/$tool
            done
            if echo "${SERVICEGROUP_EXTRAS:-}" | grep -q docs; then
              printf '#!/bin/sh\\necho "sphinx-build $*" >> calls.log\\n' \\
                > .venv/bin/sphinx-build
              chmod +x .venv/bin/sphinx-build
            fi
            """
        )
    )
    return root


def _run_script(root: pathlib.Path, script: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root)}
    return subprocess.run(
        ["bash", f"tools/{script}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_build_docs_installs_sphinx_after_only_the_demo(tmp_path: pathlib.Path) -> None:
    root = _stub_checkout(tmp_path, "build-docs.sh")
    # What tools/demo.sh leaves: a .venv with the test extra, no Sphinx.
    subprocess.run(
        ["bash", "tools/setup-venv.sh"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "SERVICEGROUP_EXTRAS": "test"},
        check=True,
    )
    result = _run_script(root, "build-docs.sh")
    assert result.returncode == 0, result.stderr
    assert (root / "setup-extras.log").read_text().split() == ["test", "docs"]
    calls = (root / "calls.log").read_text()
    assert "sphinx-build -W --keep-going -E -b html" in calls
    # Once installed, it is not installed again.
    assert _run_script(root, "build-docs.sh").returncode == 0
    assert (root / "setup-extras.log").read_text().split() == ["test", "docs"]


def test_demo_script_says_where_the_command_is(tmp_path: pathlib.Path) -> None:
    root = _stub_checkout(tmp_path, "demo.sh")
    result = _run_script(root, "demo.sh")
    assert result.returncode == 0, result.stderr
    assert "servicegroup demo" in (root / "calls.log").read_text()
    assert "run '. .venv/bin/activate' first, or call it as .venv/bin/servicegroup" in (
        result.stderr
    )
