"""The documentation runs: README.md and docs/*.md examples, links, and the CLI reference.

- Every ```python block runs in a fresh interpreter and must exit 0.
- Every ``$ batchsem ...`` line of a ```console block runs through the installed
  console script, in order per file, in a scratch directory holding a copy of
  ``results/``; ``bench`` and ``starve-test`` get tiny sizes added. The exit code
  must be 0, or the one the line states with a trailing ``# exit N``.
- A block is skipped only when the line before it is ``<!-- skip: REASON -->``.
- Relative links and images must point at files that exist.
- docs/cli.md's generated option reference must equal the commands' ``--help``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The repository root, wherever this file sits under tests/.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent

FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!-- skip: (?P<reason>\S.*?) -->\s*\Z")
EXIT = re.compile(r"\s+# exit (?P<code>\d+)$")
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")

# Options added to a documented command unless it sets them itself: a tiny, quick run.
TINY = {
    "bench": ("--duration", "0.02", "--repeat", "2", "--loop", "asyncio"),
    "starve-test": ("--duration", "0.3", "--loop", "asyncio"),
}

@dataclass
class Block:
    path: Path
    line: int
    lang: str
    body: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()]
        skip = SKIP.search(before)
        found.append(Block(path, before.count("\n") + 1, m["lang"], m["body"],
                           skip["reason"] if skip else None))
    return found


ALL = [b for path in DOCS for b in blocks(path)]
PYTHON = [b for b in ALL if b.lang == "python"]
CONSOLE_FILES = sorted({b.path for b in ALL if b.lang == "console"})


def _scratch(tmp_path: Path) -> Path:
    """A working directory with the committed result files the examples read."""
    shutil.copytree(ROOT / "results", tmp_path / "results",
                    ignore=shutil.ignore_patterns("2*T*Z-*.json"))
    return tmp_path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(block.skip)
    proc = subprocess.run([sys.executable, "-c", block.body], cwd=_scratch(tmp_path),
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{block.where}\n{proc.stdout}\n{proc.stderr}"


def tiny(command: str) -> str:
    """``command`` with TINY's options for its subcommand, except those it sets."""
    words = command.split()
    sub = words[1] if len(words) > 1 else ""
    extra: list[str] = []
    options = TINY.get(sub, ())
    for i in range(0, len(options), 2):
        if options[i] not in words and "--micro" not in words:
            extra += options[i : i + 2]
    if not extra:
        return command
    head = f"batchsem {sub}"
    return command.replace(head, f"{head} {' '.join(extra)}", 1)


def console_commands(path: Path) -> list[tuple[str, str, int]]:
    """``(where, command, expected exit code)`` of every unskipped ``$ batchsem`` line."""
    out = []
    for block in blocks(path):
        if block.lang != "console" or block.skip:
            continue
        for offset, line in enumerate(block.body.splitlines(), start=1):
            if not line.startswith("$ batchsem"):
                continue
            command = line[2:]
            code = 0
            if m := EXIT.search(command):
                code = int(m["code"])
                command = command[: m.start()]
            out.append((f"{block.where}+{offset}", command, code))
    return out


@pytest.mark.parametrize("path", CONSOLE_FILES, ids=[p.name for p in CONSOLE_FILES])
def test_cli_examples_run_at_tiny_size(path: Path, tmp_path: Path) -> None:
    commands = console_commands(path)
    assert commands, f"{path.name} has console blocks but no `$ batchsem` line"
    cwd = _scratch(tmp_path)
    for where, command, expected in commands:
        proc = subprocess.run(["bash", "-c", tiny(command)], cwd=cwd, env=_env(),
                              capture_output=True, text=True, timeout=180)
        detail = f"{where}: {tiny(command)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert proc.returncode == expected, detail
        assert "Traceback" not in proc.stderr, detail
        assert proc.stdout.strip() or proc.stderr.strip(), detail


def test_skips_give_a_reason() -> None:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"<!-- skip(?P<rest>.*?)-->", text):
            assert re.fullmatch(r": \S.* ", m["rest"]), f"{path.name}: {m[0]} needs a reason"


def test_tiny_adds_only_missing_options() -> None:
    assert tiny("batchsem bench contended --loop uvloop -o a.json") == (
        "batchsem bench --duration 0.02 --repeat 2 contended --loop uvloop -o a.json")
    assert tiny("batchsem compare a.json b.json") == "batchsem compare a.json b.json"


def test_links_resolve() -> None:
    missing = []
    for path in DOCS:
        for m in LINK.finditer(path.read_text(encoding="utf-8")):
            target = m["target"].split("#", 1)[0]
            if not target or "://" in target or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            if not resolved.exists():
                missing.append(f"{path.relative_to(ROOT)}: {m['target']}")
    assert not missing, missing


def test_cli_reference_matches_the_commands() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "cli_docs.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
