"""Console set-up, one-line user errors, and option parsing shared by the commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import click
from rich.console import Console

__all__ = ["UserError", "console", "fail", "split_list", "stderr_console"]


class UserError(click.ClickException):
    """A usage error: printed as one line, exit code 2, never a traceback."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"batchsem: error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    """Stop with a one-line error and exit code 2."""
    raise UserError(message)


def console(file: IO[str] | None = None) -> Console:
    """The console for results (stdout). Colours follow NO_COLOR and terminal detection."""
    stream = file or sys.stdout
    no_color = bool(os.environ.get("NO_COLOR"))
    out = Console(file=stream, no_color=no_color, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 150  # files and pipes: wide enough for the tables, not wrapped at 80
    return out


def stderr_console() -> Console:
    """The console for progress and warnings (stderr)."""
    return Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)


def split_list(values: Sequence[str]) -> list[str]:
    """``('a,b', 'c')`` -> ``['a', 'b', 'c']`` (options may repeat or use commas)."""
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def parse_params(values: Sequence[str]) -> dict[str, str]:
    """``--param k=v`` options into a dict; a malformed one is a UserError."""
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--param {item!r}: expected key=value")
        params[key.strip()] = value.strip()
    return params


def use_redis(url: str | None, impl_names: Sequence[str]) -> None:
    """Point the Redis implementations at ``--redis-url``, or start the private server now.

    Started before anything is measured, so a missing redis-server is one line
    (exit 2), not an error in every case.
    """
    if not any(name.startswith("redis") for name in impl_names):
        return
    from batchsem.bench import redis_impls
    from batchsem.bench.redis_server import RedisServerError

    redis_impls.configure(url)
    if url is None:
        try:
            redis_impls.server_url()
        except RedisServerError as exc:
            fail(str(exc))


def output_path(output: str | None, label: str) -> Path:
    """Where a run is saved: ``--output`` (a file, or a directory for the default name).

    Checked before anything is measured: a path that cannot be written exits 2
    with one line, so no run is lost at the end.
    """
    from batchsem.bench.results import ResultError, check_writable, default_path

    if output is None:
        path = default_path(label)
    else:
        path = Path(output)
        if path.is_dir() or output.endswith(("/", os.sep)):
            path = default_path(label, path)
    try:
        check_writable(path)
    except ResultError as exc:
        fail(str(exc))
    return path
