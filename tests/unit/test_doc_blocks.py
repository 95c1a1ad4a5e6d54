"""Every Python code block of ``doc/source/*.rst`` runs as written.

A reader copies a page's Python blocks, in order, into one session: this
test does the same, in a fresh interpreter per page, with ``HOME`` and
``XDG_STATE_HOME`` in a temporary directory. Blocks are the page's own
``.. code-block:: python`` and the parts it includes from
``tests/unit/test_docs_examples.py`` between ``# [name]`` markers (that file
also runs them under pytest, with more checks). Code a page includes by
``:pyobject:`` comes from a file that the test suite runs.

A block that is a fragment of a larger program may use names the page's
prose gives it (``api`` "built as in the quick start"); :data:`CONTEXT`
defines those, each with the sentence that justifies it. A block that can
only run against a production server goes in :data:`SKIP`, with the reason.
Both tables are checked against the pages, so they cannot go stale.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from servicegroup.testing import servers

ROOT = Path(__file__).resolve().parents[2]
DOC_SOURCE = ROOT / "doc" / "source"
PAGES = sorted(DOC_SOURCE.glob("*.rst"))

PYTHON = {"python", "python3", "py", "py3"}

_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?P<kind>code-block|code|sourcecode|literalinclude)"
    r"::[ \t]*(?P<arg>\S*)[ \t]*$"
)
_OPTION = re.compile(r"^:(?P<name>[\w-]+):[ \t]*(?P<value>.*)$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One code block of a page, as the reader sees it."""

    page: str
    line: int
    language: str
    text: str
    #: What names it: the marker or ``:pyobject:`` of an include, else the
    #: block's first line.
    key: str
    #: The file included from, relative to the repository, or None.
    source: str | None = None
    pyobject: str | None = None


def _included(path: Path, options: dict[str, str]) -> str:
    text = path.read_text()
    if "start-after" in options:
        text = text.split(options["start-after"], 1)[1]
        text = text.split("\n", 1)[1] if "\n" in text else ""
    if "end-before" in options:
        text = text.split(options["end-before"], 1)[0]
        text = text.rsplit("\n", 1)[0]
    return textwrap.dedent(text)


def blocks(page: Path) -> list[Block]:
    """The code blocks of ``page``, in order."""
    lines = page.read_text().splitlines()
    found = []
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        index += 1
        if match is None:
            continue
        start = index
        depth = len(match["indent"])
        options: dict[str, str] = {}
        body: list[str] = []
        while index < len(lines):
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= depth:
                break
            option = _OPTION.match(line.strip())
            if (
                option is not None
                and not body
                and not any(not x.strip() for x in lines[start:index])
            ):
                options[option["name"]] = option["value"].strip()
            else:
                body.append(line)
            index += 1
        if match["kind"] == "literalinclude":
            path = (page.parent / match["arg"]).resolve()
            language = options.get("language") or (
                "python" if path.suffix == ".py" else path.suffix.lstrip(".")
            )
            pyobject = options.get("pyobject")
            key = pyobject or options.get("start-after", "").strip("# []") or path.name
            text = "" if pyobject else _included(path, options)
            source = str(path.relative_to(ROOT))
        else:
            language = match["arg"] or "default"
            key = next((x.strip() for x in body if x.strip()), "")
            text = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
            source = pyobject = None
        found.append(Block(page.name, start, language, text, key, source, pyobject))
    return found


def literal_blocks(page: Path) -> list[tuple[int, str]]:
    """The ``::`` literal blocks of ``page``: (line, text)."""
    lines = page.read_text().splitlines()
    found = []
    for index, line in enumerate(lines):
        if not line.rstrip().endswith("::") or _DIRECTIVE.match(line):
            continue
        if re.match(r"^\s*\.\. [\w-]+::", line):
            continue  # a directive without content (toctree, contents, ...)
        depth = len(line) - len(line.lstrip())
        body = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= depth:
                break
            body.append(following)
        found.append((index + 1, textwrap.dedent("\n".join(body)).strip("\n")))
    return found


#: (page, block key) -> (code run before the page's blocks, why the page
#: lets the block use these names).
CONTEXT: dict[tuple[str, str], tuple[str, str]] = {
    ("index.rst", "api = servicegroup.API(conf=CONF)"): (
        """
import tempfile
from oslo_config import cfg
import servicegroup
from servicegroup import conf as sg_conf

CONF = cfg.CONF
sg_conf.register_opts(CONF)
CONF([], default_config_files=[])
CONF.set_override("servicegroup_tooz_url", f"file://{tempfile.mkdtemp()}")
""",
        "the front page shows the calls a service makes on its own CONF, "
        "as the quick start it links to sets it up",
    ),
    ("partition.rst", "import time"): (
        """
import tempfile
from oslo_config import cfg
import servicegroup
from servicegroup import conf as sg_conf

conf = cfg.ConfigOpts()
sg_conf.register_opts(conf)
conf([], default_config_files=[])
conf.set_override("servicegroup_tooz_url", f"file://{tempfile.mkdtemp()}")
api = servicegroup.API(conf=conf)
router_ids = [f"router-{i}" for i in range(100)]
""",
        "the page says: ``api`` is a servicegroup.API built as in the quick "
        "start, ``router_ids`` the keys to share",
    ),
    ("testing.rst", "testing-servers"): (
        """
import time
from oslo_config import cfg
from servicegroup import conf as sg_conf

def make_conf(url):
    conf = cfg.ConfigOpts()
    sg_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override("servicegroup_tooz_url", url)
    conf.set_override("report_interval", 0.5)
    conf.set_override("service_down_time", 3.0)
    return conf

def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.05)
""",
        "the page says: make_conf builds a ConfigOpts with the URL and short "
        "timing (report_interval = 0.5, service_down_time = 3), and "
        "wait_until polls a condition with a deadline",
    ),
}

#: (page, block key) -> what is checked after the block ran, in its
#: namespace: what the page says the block gives.
CHECKS: dict[tuple[str, str], str] = {
    ("index.rst", "api = servicegroup.API(conf=CONF)"): (
        "assert api.service_is_up({'host': 'host1', 'topic': 'compute'})\napi.stop()\n"
    ),
    # The only member owns every key, as soon as the block is done.
    ("partition.rst", "import time"): "assert mine == router_ids\napi.stop()\n",
    ("configuration.rst", "from oslo_config import cfg"): (
        "assert 'report_interval' in CONF\n"
    ),
}

#: (page, block key) -> why the block cannot run here (it needs a
#: production server). Keep this short: every other block runs.
SKIP: dict[tuple[str, str], str] = {}

#: Blocks needing a server kind that ``servicegroup.testing.servers`` starts.
NEEDS_SERVER: dict[tuple[str, str], str] = {
    ("testing.rst", "testing-servers"): "memcached",
}


def _runnable(block: Block) -> bool:
    return block.language in PYTHON and block.pyobject is None


def _script(page: Path) -> str:
    """One program running the page's Python blocks in order, in one namespace."""
    parts = ["namespace = {'__name__': '__doc_page__'}"]
    for block in blocks(page):
        key = (block.page, block.key)
        if not _runnable(block) or key in SKIP:
            continue
        where = f"{block.page}:{block.line} ({block.key})"
        for code in (CONTEXT.get(key, ("", ""))[0], block.text, CHECKS.get(key, "")):
            if code.strip():
                parts.append(
                    f"print({where!r}, flush=True)\n"
                    f"exec(compile({code!r}, {where!r}, 'exec'), namespace)"
                )
    parts.append("import os; os._exit(0)  # threads of unstopped APIs: not ours")
    return "\n".join(parts) + "\n"


def _pages_with_python() -> list[Path]:
    return [p for p in PAGES if any(_runnable(b) for b in blocks(p))]


@pytest.mark.parametrize("page", _pages_with_python(), ids=lambda p: p.name)
def test_python_blocks_run_as_written(page: Path, tmp_path: Path) -> None:
    for block in blocks(page):
        kind = NEEDS_SERVER.get((block.page, block.key))
        if kind and not servers.available(kind):
            pytest.skip(servers.missing_reason(kind))
    env = dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "st"))
    result = subprocess.run(
        [sys.executable, "-c", _script(page)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (
        f"a block of {page.name} failed; blocks run:\n{result.stdout}\n{result.stderr}"
    )


def test_every_python_block_is_checked() -> None:
    """Nothing escapes: run here, included from a tested file, or skipped."""
    for page in PAGES:
        for block in blocks(page):
            if block.language not in PYTHON:
                continue
            if block.pyobject is not None:
                # Part of an example program: the suite must run that file.
                assert block.source is not None
                name = Path(block.source).name
                tests = (ROOT / "tests").rglob("test_*.py")
                assert any(name in t.read_text() for t in tests), (
                    f"{page.name}:{block.line} includes {block.source}, which "
                    "no test runs"
                )
            elif block.source is not None:
                assert block.source == "tests/unit/test_docs_examples.py", (
                    f"{page.name}:{block.line} includes {block.source}: include "
                    "from test_docs_examples.py, between markers"
                )
            assert _runnable(block) or block.pyobject is not None


def test_context_and_skips_name_real_blocks() -> None:
    keys = {(b.page, b.key) for page in PAGES for b in blocks(page)}
    for table in (CONTEXT, CHECKS, SKIP, NEEDS_SERVER):
        for key in table:
            assert key in keys, f"{key} names no block of the pages"
    for reason in [*SKIP.values(), *(why for _, why in CONTEXT.values())]:
        assert len(reason) > 20, "say why"


def _looks_like_python(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(
        isinstance(n, (ast.Call, ast.Import, ast.ImportFrom)) for n in ast.walk(tree)
    )


def test_no_python_hides_in_literal_blocks() -> None:
    """A ``::`` block is not highlighted as Python, nor run here."""
    for page in PAGES:
        for line, text in literal_blocks(page):
            assert not _looks_like_python(text), (
                f"{page.name}:{line} is Python in a '::' block: use "
                "'.. code-block:: python' so that it is run"
            )


def test_the_parser_finds_what_the_pages_hold() -> None:
    """The block finder itself: a page's blocks with their options."""
    quickstart = blocks(DOC_SOURCE / "quickstart.rst")
    member = next(b for b in quickstart if b.key == "quickstart-member")
    assert member.source == "tests/unit/test_docs_examples.py"
    assert member.text.startswith("import tempfile\n")
    assert "[end quickstart-member]" not in member.text
    ini = next(b for b in quickstart if b.language == "ini")
    assert ini.text.startswith("[DEFAULT]\n")
    rug = [b for b in blocks(DOC_SOURCE / "partition.rst") if b.pyobject]
    assert [b.pyobject for b in rug] == [
        "Worker.run",
        "Worker.apply",
        "Worker.shutdown",
    ]


@pytest.mark.skipif(
    not servers.available("memcached"), reason=servers.missing_reason("memcached")
)
def test_the_real_server_example_fails_when_the_member_cannot_rejoin(
    tmp_path: Path,
) -> None:
    """Its "joined again" check waits for a real rejoin, not an old view.

    The testing guide's block runs with every member abandoned (beating no
    more, as after a crash) when the server restarts: its last check must
    then time out. Right after a restart the member's own process still
    reports it up, so a check asking that process passes with nobody there.
    """
    [block] = [
        b for b in blocks(DOC_SOURCE / "testing.rst") if b.key == "testing-servers"
    ]
    context = CONTEXT[("testing.rst", "testing-servers")][0]
    sabotage = """
import servicegroup
from servicegroup.testing import servers as _servers

_apis = []
_join = servicegroup.API.join
def _recording_join(self, member_id, group_id, *args, **kwargs):
    _apis.append((self, member_id, group_id))
    return _join(self, member_id, group_id, *args, **kwargs)
servicegroup.API.join = _recording_join

_restart = _servers.MemcachedServer.restart
def _restart_abandoned(self, *args, **kwargs):
    for api, member_id, group_id in _apis:
        api.driver.abandon(member_id, group_id)
    return _restart(self, *args, **kwargs)
_servers.MemcachedServer.restart = _restart_abandoned

_wait_until = wait_until
def wait_until(predicate, timeout=None):
    _wait_until(predicate, 6 * 0.5)  # six report intervals: ample to rejoin
"""
    script = tmp_path / "example.py"  # a file: tracebacks show its lines
    script.write_text(
        "\n".join([context, sabotage, block.text, "import os; os._exit(0)"])
    )
    env = dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "st"))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, "the example saw a rejoin that never happened"
    assert "not true in time" in result.stderr, result.stderr
    assert "joined again" in result.stderr  # the last check is the one failing


# -- the installation page ----------------------------------------------------------


def _pip_installs() -> list[str]:
    page = DOC_SOURCE / "install.rst"
    commands = []
    for block in blocks(page):
        if block.language == "console":
            commands += re.findall(
                r"^\$ (pip install .*?)(?:\s+#.*)?$", block.text, re.M
            )
    return commands


def test_install_page_installs_from_a_checkout_or_a_wheel() -> None:
    """The package is on no index: every install names a directory or a wheel."""
    commands = _pip_installs()
    assert len(commands) >= 6, commands
    for command in commands:
        target = command.split(maxsplit=2)[2].strip("'\"")
        assert target.startswith(("./servicegroup[", "dist/servicegroup-")), command


def test_install_page_wheel_is_the_one_pip_builds(tmp_path: Path) -> None:
    import servicegroup

    [wheel] = [c for c in _pip_installs() if ".whl" in c]
    name = re.search(r"dist/(servicegroup-\S+\.whl)", wheel)
    assert name is not None
    assert name[1] == f"servicegroup-{servicegroup.__version__}-py3-none-any.whl"
    # The page's `pip wheel --no-deps -w dist ./servicegroup` (pip fetches
    # the build backend, setuptools, from the index as it would for a user).
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        + ["-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert [p.name for p in tmp_path.glob("*.whl")] == [name[1]]


# -- the benchmarks page ------------------------------------------------------------


def test_benchmark_plots_are_shown() -> None:
    """The Plots section of the benchmarks page shows committed images."""
    text = (DOC_SOURCE / "benchmarks.rst").read_text()
    section = text.split("\nPlots\n~~~~~\n", 1)[1]
    section = re.split(r"\n[^\n]+\n[~=\-^]{3,}\n", section, maxsplit=1)[0]
    images = re.findall(r"^\.\. (?:image|figure):: (\S+)", section, re.M)
    assert len(images) >= 4, section
    for image in images:
        path = DOC_SOURCE / image
        assert path.is_file(), image
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
