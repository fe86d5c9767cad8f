"""The benchmark scripts still start, and the commands the documents quote still parse.

Nothing here measures anything: every ``benchmarks/*.py`` script is run in this process, as
``python benchmarks/NAME.py --help`` would run it (its own folder first on ``sys.path``), and must
print its help and exit with status 0; and every ``python benchmarks/NAME.py ...`` command that
``benchmarks/RESULTS.md``, ``README.md`` or ``benchmarks/gpu_check.sh`` quotes is handed to that
script's own argparse parser, which must accept it.  The parse is intercepted as soon as it
succeeds, so no benchmark runs.
Running the scripts in this process imports torch and reportgen once for all of them.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
# The documents whose quoted commands must parse.
DOCUMENTS = [BENCHMARKS / "RESULTS.md", REPO / "README.md"]

# The argparse methods a script may call to read its command line; whichever is called first
# (outermost: parse_args calls parse_known_args itself) is intercepted once it returns.
PARSE_METHODS = (
    "parse_args",
    "parse_known_args",
    "parse_intermixed_args",
    "parse_known_intermixed_args",
)


class _Parsed(Exception):
    """Raised in place of returning from a successful parse: the script stops before it runs."""

    def __init__(self, result):
        super().__init__("parsed")
        self.result = result


def _intercepted(monkeypatch) -> None:
    """Make every successful argparse parse raise ``_Parsed`` (errors and --help still exit)."""
    depth = [0]

    def wrap(original):
        @functools.wraps(original)
        def parse(self, *args, **kwargs):
            depth[0] += 1
            try:
                result = original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                raise _Parsed(result)
            return result

        return parse

    for name in PARSE_METHODS:
        monkeypatch.setattr(
            argparse.ArgumentParser, name, wrap(getattr(argparse.ArgumentParser, name))
        )


@contextlib.contextmanager
def _as_script(path: Path, arguments: list[str], monkeypatch):
    """What ``python path ARGUMENTS`` would see: ``sys.argv``, and the script's folder first on
    ``sys.path``.  Sibling modules it imports (``from quality import ...``) are its own, and
    leave ``sys.modules`` when it is done; torch and reportgen stay imported for the next."""
    siblings = {script.stem for script in SCRIPTS}
    before = set(sys.modules)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "argv", [str(path), *arguments])
        patch.setattr(sys, "path", [str(path.parent), *sys.path])
        for name in siblings:
            patch.delitem(sys.modules, name, raising=False)
        try:
            yield
        finally:
            for name in set(sys.modules) - before:
                module_file = getattr(sys.modules[name], "__file__", None) or ""
                if name in siblings or Path(module_file).parent == path.parent:
                    del sys.modules[name]


# --- what each script is, read from its source -------------------------------------------------


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _has_main_guard(path: Path) -> bool:
    """Whether the script has ``if __name__ == "__main__":`` (a library module has not)."""
    for node in _tree(path).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [node.test.left, *node.test.comparators]
            dumped = {ast.unparse(name) for name in names}
            if dumped == {"__name__", "'__main__'"}:
                return True
    return False


def _reads_argparse(path: Path, seen: frozenset[str] = frozenset()) -> bool:
    """Whether the script, or a sibling module it imports (regions.py takes blend.py's command
    line), uses argparse: a script that does not would run for real on ``--help``."""
    tree = _tree(path)
    siblings = {script.stem: script for script in SCRIPTS}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in siblings:
            imported.add(node.module)
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names if a.name in siblings}
    return any(
        _reads_argparse(siblings[name], seen | {path.stem})
        for name in imported - seen - {path.stem}
    )


# --- 1. every script imports and answers --help ------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_imports_and_prints_its_help(script, monkeypatch, capsys):
    if not _has_main_guard(script):
        # A library module of the other scripts (recorded.py): importing it is all there is.
        with _as_script(script, [], monkeypatch):
            runpy.run_path(str(script), run_name=f"benchmark_{script.stem}")
        return
    assert _reads_argparse(script), (
        f"{script.name} runs as a script but reads no argparse command line: its --help cannot "
        "be checked without running the benchmark"
    )
    _intercepted(monkeypatch)
    with _as_script(script, ["--help"], monkeypatch):
        with pytest.raises(SystemExit) as exited:
            try:
                runpy.run_path(str(script), run_name="__main__")
            except _Parsed:
                pytest.fail(f"{script.name} parsed --help without printing its help and exiting")
    out, err = capsys.readouterr()
    assert exited.value.code in (0, None), (
        f"{script.name} --help exited {exited.value.code}:\n{err}"
    )
    assert "usage:" in out, f"{script.name} --help printed no usage:\n{out}"


# --- 2. every quoted command parses ------------------------------------------------------------


@dataclass(frozen=True)
class Quoted:
    """A benchmark command quoted in a document, where, and its arguments."""

    document: Path
    line: int
    text: str
    script: str  # benchmarks/NAME.py
    arguments: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}"


FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
# An inline code span: a run of backticks, its text (line breaks allowed, but not a blank line),
# and a run of the same length.
INLINE = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.S)
# A command: optional VAR=value settings, an optional python (any path, python3, python3.11),
# then the script and its arguments.
COMMAND = re.compile(
    r"^(?:\$\s+)?(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*"
    r"(?P<python>(?:\S*/)?python(?:\d+(?:\.\d+)?)?\s+)?"
    r"(?P<script>benchmarks/[\w.-]+\.py)(?=\s|$)(?P<rest>.*)$",
    re.S,
)


def _arguments(rest: str) -> tuple[str, ...]:
    """The shell words after the script, up to a shell operator or comment."""
    lexer = shlex.shlex(rest, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word and set(word) <= set(";&|<>()"):
            break
        words.append(word)
    return tuple(words)


def _command(document: Path, line: int, text: str, in_block: bool) -> Quoted | None:
    """The command ``text`` is, if it runs a benchmark script.  Inline, ``benchmarks/x.py``
    alone names the file and is no command; with arguments, or after python, it is one."""
    text = " ".join(text.split())
    match = COMMAND.match(text)
    if match is None:
        return None
    arguments = _arguments(match["rest"])
    if not in_block and match["python"] is None and not arguments:
        return None
    return Quoted(document, line, text, match["script"], arguments)


class _Continuations:
    """Shell lines with their backslash continuations joined, fed one line at a time."""

    def __init__(self) -> None:
        self.pending, self.first = "", 0

    def feed(self, number: int, line: str) -> tuple[int, str] | None:
        """(the first line's number, the joined text) once a line does not continue, else
        ``None``."""
        stripped = line.strip()
        if not self.pending:
            self.first = number
        if stripped.endswith("\\"):
            self.pending += stripped[:-1] + " "
            return None
        joined, self.pending = self.pending + stripped, ""
        return self.first, joined


def _quoted_commands(document: Path) -> list[Quoted]:
    if not document.exists():
        return []
    text = document.read_text()
    lines = text.splitlines(keepends=True)
    commands = []
    # Fenced code blocks: each line (backslash continuations joined) may be a command; the block
    # is blanked out, keeping its line breaks, before inline spans are looked for.
    masked = []
    fence = None
    continued = _Continuations()
    for number, line in enumerate(lines, 1):
        opening = FENCE.match(line)
        if fence is None:
            if opening:
                fence = opening[1]
                masked.append("\n")
            else:
                masked.append(line)
            continue
        masked.append("\n")
        if opening and opening[1][0] == fence[0] and len(opening[1]) >= len(fence):
            if line.strip() == opening[1]:
                fence = None
                continue
        joined = continued.feed(number, line)
        if joined:
            found = _command(document, *joined, in_block=True)
            if found:
                commands.append(found)
    masked_text = "".join(masked)
    for span in INLINE.finditer(masked_text):
        line = masked_text.count("\n", 0, span.start(2)) + 1
        found = _command(document, line, span[2], in_block=False)
        if found:
            commands.append(found)
    return sorted(commands, key=lambda quoted: quoted.line)


def _shell_commands(script: Path) -> list[Quoted]:
    """The benchmark commands a shell script runs (``step NAME SECONDS python3 benchmarks/...``
    in benchmarks/gpu_check.sh), backslash continuations joined."""
    commands, continued = [], _Continuations()
    for number, line in enumerate(script.read_text().splitlines(), 1):
        joined = continued.feed(number, line)
        if not joined or joined[1].startswith("#"):
            continue
        first, text = joined
        start = re.search(r"(?:\S*/)?python\d*(?:\.\d+)?\s+benchmarks/", text)
        if start:
            found = _command(script, first, text[start.start() :], in_block=True)
            if found:
                commands.append(found)
    return commands


QUOTED = [quoted for document in DOCUMENTS for quoted in _quoted_commands(document)]
QUOTED += _shell_commands(BENCHMARKS / "gpu_check.sh")


def _id(quoted: Quoted) -> str:
    return f"{quoted.where}:{Path(quoted.script).name}"


def test_commands_are_found_however_they_are_quoted(tmp_path):
    """The extraction itself (a broken pattern would let every document pass with no command):
    code spans over a line break, fenced blocks with continuations and shell operators, and a
    bare file name, which is no command."""
    document = tmp_path / "RESULTS.md"
    document.write_text(
        "Run `python benchmarks/bench.py --sizes 256` and `python benchmarks/blend.py\n"
        "--set steps=100`; see `benchmarks/quality.py` and `benchmarks/memory.py --largest`.\n"
        "\n"
        "```sh\n"
        "$ .venv/bin/python benchmarks/quality.py --sizes 128 \\\n"
        "    --pairs none && echo done  # comment\n"
        "echo `python benchmarks/nothing.py`\n"
        "```\n"
        "`python benchmarks/scale.py`\n"
    )
    found = [(q.line, q.script, q.arguments) for q in _quoted_commands(document)]
    assert found == [
        (1, "benchmarks/bench.py", ("--sizes", "256")),
        (1, "benchmarks/blend.py", ("--set", "steps=100")),
        (2, "benchmarks/memory.py", ("--largest",)),
        (5, "benchmarks/quality.py", ("--sizes", "128", "--pairs", "none")),
        (9, "benchmarks/scale.py", ()),
    ]
    assert QUOTED, "benchmarks/RESULTS.md quotes no benchmark command any more"


@pytest.mark.parametrize("quoted", QUOTED, ids=[_id(quoted) for quoted in QUOTED])
def test_quoted_command_parses(quoted, monkeypatch, capsys):
    script = REPO / quoted.script
    described = f"`{quoted.text}` ({quoted.where})"
    assert script.is_file(), f"{described} runs {quoted.script}, which does not exist"
    assert _has_main_guard(script) and _reads_argparse(script), (
        f"{described}: {quoted.script} has no argparse command line to check it against"
    )
    _intercepted(monkeypatch)
    with _as_script(script, list(quoted.arguments), monkeypatch):
        try:
            runpy.run_path(str(script), run_name="__main__")
        except _Parsed:
            return
        except SystemExit as exited:
            code = exited.code
        else:
            code = None
    if code is None:
        pytest.fail(f"{described}: {quoted.script} finished without parsing its arguments")
    err = capsys.readouterr().err.strip()
    pytest.fail(
        f"{described} no longer parses: {quoted.script} exited {code}\n{err}", pytrace=False
    )
