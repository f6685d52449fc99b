"""The distribution: zero-dependency library install, the tool as an extra, clean sdist and wheel.

The sdist and wheel are built once per session from the working tree (the wheel
from the sdist, so the sdist is proven complete). The wheel is installed into a
fresh virtual environment without pip, without extras and without the network,
and the library is imported there with nothing but the standard library.
"""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchsem
from batchsem import _entry

# The repository root, wherever this file sits under tests/.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
# Only these may sit at the top of the sdist; anything else is a stray file that would ship.
SDIST_TOP = {
    "batchsem", "tests", "docs", "benchmarks", "tools", "results", "batchsem.egg-info",
    "LICENSE", "README.md", "CHANGELOG.md", "Makefile", "MANIFEST.in", "PKG-INFO",
    "pyproject.toml", "setup.py", "setup.cfg",
}


def _run(
    *cmd: str | Path, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` (sdist, then the wheel from the sdist) into a temporary directory."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    return out


@pytest.fixture(scope="session")
def wheel(dist: Path) -> Path:
    (path,) = dist.glob("*.whl")
    return path


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Iterator[Path]:
    """A new venv (no pip, no extras) with only the wheel installed; yields its bin directory."""
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    _run(sys.executable, "-m", "pip", "--python", bindir / "python", "install", "--quiet",
         "--no-deps", "--no-index", wheel)
    yield bindir


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


IMPORT_CHECK = """
import sys
before = set(sys.modules)
import batchsem, batchsem.tracing
assert batchsem.__file__.startswith(sys.prefix), batchsem.__file__
tops = {name.partition(".")[0] for name in set(sys.modules) - before}
third_party = sorted(tops - set(sys.stdlib_module_names) - {"batchsem"})
print(batchsem.__version__, third_party)
"""


def test_wheel_installs_the_library_alone(fresh_venv: Path, tmp_path: Path) -> None:
    proc = _run(fresh_venv / "python", "-c", IMPORT_CHECK, cwd=tmp_path)
    assert proc.stdout.split() == [batchsem.__version__, "[]"], proc.stdout + proc.stderr


@pytest.mark.parametrize("how", ["console-script", "python -m"])
def test_the_tool_without_its_extra_says_what_to_install(
    fresh_venv: Path, tmp_path: Path, how: str
) -> None:
    cmd = [fresh_venv / "batchsem"] if how == "console-script" else [
        fresh_venv / "python", "-m", "batchsem"]
    proc = _run(*cmd, "list", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("batchsem: error: the command-line tool needs click, rich, ")
    assert "pip install 'batchsem[cli]'" in lines[0]


def test_metadata_declares_no_dependency_outside_extras(wheel: Path) -> None:
    meta = _metadata(wheel)
    requires = meta.get_all("Requires-Dist") or []
    assert requires, "the extras should be declared"
    assert all("extra ==" in r for r in requires), requires
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"cli", "peers", "test"} <= extras
    cli = [r for r in requires if "extra == \"cli\"" in r]
    assert {r.split()[0].split(">")[0].split(";")[0] for r in cli} == {
        "click", "rich", "pyperf", "hdrhistogram", "uvloop"}
    assert meta["Version"] == batchsem.__version__
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier") or []
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Framework :: AsyncIO" in classifiers
    assert any(c.startswith("Operating System ::") for c in classifiers)
    assert meta.get_all("Project-URL")


def test_wheel_and_sdist_hold_only_what_they_should(dist: Path, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"batchsem", f"batchsem-{batchsem.__version__}.dist-info"}, tops
    assert "batchsem/py.typed" in names and "batchsem/__main__.py" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        members = [m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name]
    assert {m.split("/")[0] for m in members} <= SDIST_TOP
    for needed in ("LICENSE", "CHANGELOG.md", "README.md", "batchsem/py.typed", "docs/cli.md"):
        assert needed in members


def test_twine_check_and_check_wheel_contents(dist: Path, wheel: Path) -> None:
    proc = _run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()),
                check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cwc = Path(sys.executable).with_name("check-wheel-contents")
    proc = _run(cwc, wheel, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shim_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = _entry.importlib.util.find_spec
    monkeypatch.setattr(
        _entry.importlib.util, "find_spec",
        lambda name, *a: None if name in ("rich", "hdrh") else real(name, *a),
    )
    assert _entry.missing_requirements() == ["rich", "hdrhistogram"]
    with pytest.raises(SystemExit) as exc:
        _entry.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "needs rich, hdrhistogram: pip install 'batchsem[cli]'" in err


def test_python_dash_m_runs_the_tool(tmp_path: Path) -> None:
    proc = _run(sys.executable, "-m", "batchsem", "--version", cwd=tmp_path)
    assert proc.stdout.strip().endswith(batchsem.__version__)
