"""``--export-csv FILE`` and ``--export-markdown FILE`` for bench, compare and report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .common import fail

__all__ = ["Exports", "export_options"]

F = TypeVar("F", bound=Callable[..., Any])


def export_options(command: F) -> F:
    """Add the two export options (parameters ``export_csv`` and ``export_markdown``)."""
    # click lists options in reverse order of decoration: CSV first
    command = click.option("--export-markdown", "export_markdown", default=None, metavar="FILE",
                           help="also write the table as Markdown")(command)
    command = click.option("--export-csv", "export_csv", default=None, metavar="FILE",
                           help="also write the table as CSV (units in the header)")(command)
    return command


class Exports:
    """The export files a command was asked for, checked for writability up front
    (before anything is measured, so no run is lost to a typo at the end).
    """

    def __init__(self, csv_file: str | None, markdown_file: str | None) -> None:
        from batchsem.bench.results import ResultError, check_writable

        self.csv = None if csv_file is None else Path(csv_file)
        self.markdown = None if markdown_file is None else Path(markdown_file)
        for path in (self.csv, self.markdown):
            if path is not None:
                try:
                    check_writable(path)
                except ResultError as exc:
                    fail(str(exc))
        if self.csv is not None and self.csv == self.markdown:
            fail(f"--export-csv and --export-markdown both write {self.csv}")

    def write(self, build: Callable[[], Any]) -> list[Path]:
        """Write every requested export of the table ``build()`` returns; the paths written.

        A file that cannot be written is a one-line error (exit 2).
        """
        from batchsem.report.export_csv import to_csv
        from batchsem.report.export_markdown import to_markdown

        if self.csv is None and self.markdown is None:
            return []
        table = build()
        written = []
        for path, render in ((self.csv, to_csv), (self.markdown, to_markdown)):
            if path is None:
                continue
            try:
                path.write_text(render(table), encoding="utf-8")
            except OSError as exc:
                fail(f"cannot write {path}: {exc.strerror or exc}")
            written.append(path)
        return written
