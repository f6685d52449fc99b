"""The ``batchsem`` command: benchmark and diagnose semaphores for speed and fairness."""

from __future__ import annotations

import os
import sys

import click

from batchsem import __version__

from .common import UserError
from .helptext import examples


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=examples(
        ("batchsem bench --quick", "the default suite in ~10 s; ~1 min without --quick"),
        ("batchsem starve-test --impl batchsem,condition", "exit 1: condition starves"),
        ("batchsem compare before.json after.json", "faster or fairer, and is it real?"),
        ("batchsem COMMAND --help", "options and examples of a command"),
        ("batchsem completion --help", "shell completion"),
    ) + "\n\nExit codes: 0 ok; 1 an invariant failed, a limiter starves or a regression was "
    "found; 2 a usage error (one line, never a traceback). Reference: docs/cli.md.",
)
@click.version_option(__version__, prog_name="batchsem")
def cli() -> None:
    """Benchmark and diagnose semaphores and other concurrency limiters: throughput,
    latency percentiles and fairness, with statistics that say whether a change is real.
    """


def _register() -> None:
    from .bench_cmd import bench
    from .compare_cmd import compare
    from .completion import completion
    from .list_cmd import list_cmd
    from .report_cmd import report
    from .show_cmd import show
    from .starve_cmd import starve_test

    for command in (bench, starve_test, compare, show, report, list_cmd, completion):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point: usage errors exit 2 in one line; broken pipes exit quietly."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("batchsem: interrupted", err=True)
        sys.exit(130)
    except UserError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # click's own usage errors: keep them to one line
        click.echo(f"batchsem: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit as exc:
        # click turns a broken stdout pipe into exit 1 after wrapping stdout in its
        # PacifyFlushWrapper; 1 means "regression found" here, so that becomes 0.
        if exc.code == 1 and type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            sys.exit(0)
        raise
    except BrokenPipeError:
        # The reader went away (``| head``): nothing more to say, no traceback, and exit 0
        # (1 would read as "regression found" or "invariant violated").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("batchsem: interrupted", err=True)
        sys.exit(130)
