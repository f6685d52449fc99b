"""``batchsem list``: workloads with their parameters, implementations, loops."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from batchsem.bench import impls, loops
from batchsem.workloads import REGISTRY

from .common import console


@click.command("list")
def list_cmd() -> None:
    """List the workloads (parameters, defaults), implementations and event loops."""
    out = console()
    table = Table(title="workloads", title_justify="left", header_style="bold")
    table.add_column("workload", style="bold")
    table.add_column("description")
    table.add_column("--param key=default")
    for w in REGISTRY.values():
        params = "\n".join(f"{p.name}={p.default!r}  {p.help}" for p in w.params) or "-"
        flags = []
        if w.open_loop:
            flags.append("--rate")
        if w.threaded:
            flags.append("thread-safe impls only")
        if w.classes != ("all",):
            flags.append("classes: " + ", ".join(w.classes))
        desc = Text(w.description)
        if flags:
            desc.append("\n" + "; ".join(flags), style="dim")
        table.add_row(Text(w.name), desc, Text(params))
    out.print(table)

    table = Table(title="implementations (--impl)", title_justify="left", header_style="bold")
    table.add_column("impl", style="bold")
    table.add_column("installed")
    table.add_column("thread-safe")
    table.add_column("description")
    for name, impl in impls.BUILTIN.items():
        ok = impls.installed(name)
        installed = Text("yes", style="green") if ok else Text("no", style="red")
        if not ok:
            installed.append(" (pip install 'batchsem[peers]')")
        table.add_row(
            Text(name), installed, "yes" if impl.thread_safe else "no", Text(impl.description)
        )
    table.add_row("module:attr", "-", "if declared",
                  Text("your factory(permits) -> limiter (README)"))
    out.print(table)

    table = Table(title="event loops (--loop)", title_justify="left", header_style="bold")
    table.add_column("loop", style="bold")
    table.add_column("available")
    for name in loops.LOOPS:
        reason = loops.unavailable_reason(name)
        available = Text("yes", style="green") if reason is None else Text("no", style="red")
        if reason is not None:
            available.append(f": {reason}")
        table.add_row(Text(name), available)
    out.print(table)
