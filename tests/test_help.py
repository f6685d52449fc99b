"""Help texts (summaries, examples, names) and shell completion of the ``batchsem`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from batchsem.bench import impls, loops
from batchsem.cli import cli
from batchsem.workloads import REGISTRY

COMMANDS = sorted(cli.commands)
BIN = Path(sys.executable).parent


def _help(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def test_top_level_help_shows_every_summary_whole_at_80_columns() -> None:
    text = _help()
    for name in COMMANDS:
        command = cli.commands[name]
        assert command.short_help, f"{name}: set short_help (else click cuts the docstring)"
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(name + " "))
        assert line.split() == [name, *command.short_help.split()], line


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_has_an_example_and_fits_80_columns(name: str) -> None:
    text = _help(name)
    examples = text.split("Examples:", 1)
    assert len(examples) == 2, f"{name} --help has no Examples: section"
    assert f"batchsem {name}" in examples[1]
    too_wide = [ln for ln in text.splitlines() if len(ln) > 80]
    assert not too_wide, too_wide


def test_bench_help_names_every_workload_and_impl() -> None:
    text = " ".join(_help("bench").split())
    for workload in REGISTRY:
        assert workload in text
    for impl in impls.BUILTIN:
        assert impl in text
    for loop in loops.LOOPS:
        assert loop in text


def _complete(args: list[str], incomplete: str) -> list[str]:
    comp = ShellComplete(cli, {}, "batchsem", "_BATCHSEM_COMPLETE")
    return [item.value for item in comp.get_completions(args, incomplete)]


def test_completes_workloads_impls_and_loops() -> None:
    assert _complete(["bench"], "con") == ["contended"]
    assert _complete(["bench", "contended"], "st") == ["starvation"]
    assert _complete(["bench"], "") == list(REGISTRY)
    assert sorted(_complete(["bench", "--impl"], "a")) == ["aiologic", "asyncio"]
    # after a comma: the rest of the list, without what is already there
    assert sorted(_complete(["bench", "--impl"], "batchsem,a")) == [
        "batchsem,aiologic", "batchsem,asyncio"]
    assert "batchsem,batchsem" not in _complete(["bench", "--impl"], "batchsem,")
    assert _complete(["starve-test", "--impl"], "cond") == ["condition"]
    assert _complete(["bench", "--loop"], "uv") == ["uvloop"]
    assert _complete(["starve-test", "--loop"], "asyncio,") == ["asyncio,uvloop"]
    assert _complete([], "starve") == ["starve-test"]
    assert _complete(["completion"], "") == ["bash", "zsh", "fish"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert "_BATCHSEM_COMPLETE" in result.output


def test_completion_bad_shell_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert result.exit_code == 2


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_through_the_installed_script(tmp_path: Path) -> None:
    """The whole chain: bash sources the script, which runs the console script."""
    if not (BIN / "batchsem").exists():
        pytest.fail(f"no batchsem console script next to {sys.executable}")
    probe = (
        'eval "$(batchsem completion bash)"\n'
        "COMP_WORDS=(batchsem bench --impl batchsem,as); COMP_CWORD=3\n"
        "_batchsem_completion batchsem\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["batchsem,asyncio"]


def test_group_help_shows_exit_codes_and_reference() -> None:
    text = _help()
    assert "Exit codes:" in text and "docs/cli.md" in text
