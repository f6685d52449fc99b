"""Shell completion: ``batchsem completion bash|zsh|fish`` and the names click cannot know.

Completion is click's own mechanism: the printed script calls ``batchsem`` with
``_BATCHSEM_COMPLETE`` set, and click answers from the command tree. The
functions below add the values click cannot know: workload, implementation
and loop names, also after a comma in the comma-separated options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click
from click.shell_completion import CompletionItem, get_completion_class

from .helptext import examples

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_BATCHSEM_COMPLETE"

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _names(values: Callable[[], Iterable[str]], *, comma_list: bool) -> Completer:
    """Complete ``values()``; in a comma-separated option, the item after the last comma."""

    def complete(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        head, _, last = incomplete.rpartition(",") if comma_list else ("", "", incomplete)
        taken = set(head.split(",")) if head else set()
        prefix = head + "," if head else ""
        return [
            CompletionItem(prefix + name)
            for name in values()
            if name.startswith(last) and name not in taken
        ]

    return complete


def _workload_names() -> Iterable[str]:
    from batchsem.workloads import REGISTRY

    return REGISTRY


def _impl_names() -> Iterable[str]:
    from batchsem.bench.impls import BUILTIN

    return BUILTIN


def _loop_names() -> Iterable[str]:
    from batchsem.bench.loops import LOOPS

    return LOOPS


complete_workloads = _names(_workload_names, comma_list=False)
complete_impls = _names(_impl_names, comma_list=True)
complete_loops = _names(_loop_names, comma_list=True)


@click.command(
    short_help="Print the shell completion script (bash, zsh, fish)",
    epilog=examples(
        ("eval \"$(batchsem completion bash)\"", "in ~/.bashrc"),
        ("eval \"$(batchsem completion zsh)\"", "in ~/.zshrc, after compinit"),
        ("batchsem completion fish > ~/.config/fish/completions/batchsem.fish", ""),
    ) + "\n\nThe script runs batchsem with _BATCHSEM_COMPLETE set; click answers from the "
    "command tree.",
)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the script that makes SHELL complete batchsem's commands and options,
    including workload, implementation (--impl) and event loop (--loop) names.
    """
    cls = get_completion_class(shell)
    assert cls is not None  # click.Choice admits only shells click supports
    click.echo(cls(ctx.find_root().command, {}, "batchsem", COMPLETE_VAR).source())
