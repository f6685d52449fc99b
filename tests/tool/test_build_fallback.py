"""setup.py: a failed or skipped build of the C accelerator is a warning, never an error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("setuptools")


def build(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``setup.py build_ext --inplace`` on a copy of the sources, with ``env`` added."""
    src = tmp_path / "src"
    (src / "batchsem").mkdir(parents=True)
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copy(ROOT / "batchsem" / "_cbatchsem.c", src / "batchsem" / "_cbatchsem.c")
    # pyproject.toml reads the version from batchsem.__version__.
    (src / "batchsem" / "__init__.py").write_text('__version__ = "0"\n')
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=src,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def built(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "src" / "batchsem").glob("_cbatchsem*.so"))


def test_a_failing_compiler_gives_a_warning_and_pure_python(tmp_path: Path) -> None:
    result = build(tmp_path, CC="false")
    assert result.returncode == 0, result.stderr
    assert "WARNING: the C accelerator batchsem._cbatchsem could not be built" in result.stderr
    assert "installed as pure Python" in result.stderr
    assert built(tmp_path) == []


def test_batchsem_no_extensions_skips_the_build(tmp_path: Path) -> None:
    result = build(tmp_path, BATCHSEM_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert "BATCHSEM_NO_EXTENSIONS is set" in result.stderr
    assert built(tmp_path) == []
