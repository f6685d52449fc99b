"""Console set-up, one-line user errors, and option parsing shared by the commands."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console

if TYPE_CHECKING:
    from batchsem.bench.schema import Run

__all__ = ["UserError", "console", "fail", "split_list", "stderr_console"]


class UserError(click.ClickException):
    """A usage error: printed as one line, exit code 2, never a traceback."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"batchsem: error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    """Stop with a one-line error and exit code 2."""
    raise UserError(message)


class _Console(Console):
    """rich's Console, but a reader that went away (``| head``) is not a failure.

    rich exits 1 on a broken pipe, which ``compare --fail-on-regression`` uses
    for "regression found"; this raises BrokenPipeError, which ``main`` turns
    into a quiet exit 0.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "stdout closed")


#: The width of piped output without ``COLUMNS``: wider than any table the tool prints.
UNBOUNDED = 1000


def console(file: IO[str] | None = None) -> Console:
    """The console for results (stdout). Colours follow NO_COLOR and terminal detection.

    The width is the terminal's. Without a terminal (a pipe, a file) it is
    ``COLUMNS`` if set; else :data:`UNBOUNDED`, so tables print whole at their
    natural width, with no column dropped and no cell folded, for whatever
    reads the output later (``grep``, a file, a CI log). Tables fit the width
    (see :func:`batchsem.cli.render.fitted_table`).
    """
    stream = file or sys.stdout
    no_color = bool(os.environ.get("NO_COLOR"))
    out = _Console(file=stream, no_color=no_color, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = UNBOUNDED
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


@dataclass(frozen=True)
class SaveTo:
    """Where a run will be saved; ``unique``: a generated name that may get a ``-N`` suffix."""

    path: Path
    unique: bool


def output_path(output: str | None, label: str) -> SaveTo:
    """Where a run is saved: ``--output`` (a file, or a directory for the default name).

    Checked before anything is measured: a path that cannot be written, or a
    file that exists (runs are never overwritten), exits 2 with one line.
    """
    from batchsem.bench.results import ResultError, check_writable, default_path

    if output is None:
        path, unique = default_path(label), True
    else:
        path, unique = Path(output), False
        if path.is_dir() or output.endswith(("/", os.sep)):
            path, unique = default_path(label, path), True
    try:
        check_writable(path, must_not_exist=not unique)
    except ResultError as exc:
        fail(str(exc))
    return SaveTo(path, unique)


def save_run(run: Run, to: SaveTo) -> Path:
    """Save ``run``; if that fails, save it to the fallback location and exit 2 saying where.

    Never raises anything but :class:`UserError`.
    """
    from batchsem.bench.results import ResultError, fallback_path, save

    try:
        return save(run, to.path, unique=to.unique)
    except ResultError as exc:
        reason = str(exc)
    try:
        spare = save(run, fallback_path(to.path), unique=True)
    except ResultError:
        fail(f"{reason}; the run could not be saved anywhere")
    fail(f"{reason}; the run was saved to {spare} instead")


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM, so a terminated run is saved like Ctrl-C."""


#: Set by SIGTERM: an Interrupted raised inside a finalizer is swallowed, this is not.
TERMINATED = threading.Event()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM is handled as Ctrl-C is, instead of killing the process, so
    the caller's Ctrl-C path saves what finished. It also sets :data:`TERMINATED`, for
    callers to check between steps.

    While an ``asyncio.Runner`` runs a loop, SIGTERM goes to the Runner's own SIGINT
    handler, which cancels its main task and raises ``KeyboardInterrupt`` once the
    loop is back in a consistent state. A ``KeyboardInterrupt`` raised at an
    arbitrary bytecode inside the loop can land between a task's wake-up being taken
    from the ready queue and the task running; that task then never runs again and
    the Runner's shutdown waits for it forever (seen: 2 of 9 SIGTERMs hung a bench
    run). Outside a loop, SIGTERM raises :class:`Interrupted` (a ``KeyboardInterrupt``)
    at once.
    """

    def handler(signum: int, frame: Any) -> None:
        TERMINATED.set()
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint) and on_sigint is not signal.default_int_handler:
            on_sigint(signal.SIGINT, frame)
            return
        raise Interrupted()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
