"""Helpers for the tests that drive the ``batchsem`` command line."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from click.testing import CliRunner, Result

from batchsem.cli import cli, main


def invoke(*args: str) -> Result:
    """Run ``batchsem ARGS`` through click's test runner; unexpected exceptions propagate."""
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Call the console-script entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["batchsem", *args])
    code: Any = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    """Exit code 2 and exactly one ``batchsem: error:`` line containing ``fragment``."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("batchsem: error:"), err
    assert fragment in lines[0]
    assert "Traceback" not in err
