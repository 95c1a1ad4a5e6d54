"""The README's examples run as written."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

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
