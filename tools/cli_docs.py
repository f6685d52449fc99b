"""Keep the option reference in docs/cli.md equal to the commands' own ``--help``.

docs/cli.md holds, for ``batchsem`` and each of its commands, a block between

    <!-- generated: batchsem NAME --help -->
    ...
    <!-- end generated -->

that this script fills with the command's help text at 80 columns. Run it
(``make docs``) after changing an option; ``--check`` (used by the tests)
changes nothing and exits 1 if a block is stale, missing, or names a command
that no longer exists.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from click.testing import CliRunner

from batchsem.cli import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
WIDTH = 80
BLOCK = re.compile(
    r"(<!-- generated: (?P<cmd>batchsem(?: [\w-]+)?) --help -->\n)(?P<body>.*?)"
    r"(<!-- end generated -->)",
    re.DOTALL,
)


def help_text(command_line: str) -> str:
    """``batchsem [NAME] --help`` as printed in an 80-column terminal."""
    args = command_line.split()[1:]
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="batchsem",
                                terminal_width=WIDTH)
    if result.exit_code != 0:
        raise SystemExit(f"{command_line} --help failed: {result.output}")
    return result.output


def render(text: str) -> tuple[str, list[str]]:
    """docs/cli.md with every generated block refreshed, and the problems found."""
    problems: list[str] = []
    wanted = {"batchsem", *(f"batchsem {name}" for name in cli.commands)}
    seen: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        cmd = match["cmd"]
        seen.add(cmd)
        if cmd not in wanted:
            problems.append(f"docs/cli.md documents `{cmd}`, which does not exist")
            return match[0]
        return f"{match[1]}```text\n{help_text(cmd)}```\n{match[4]}"

    new = BLOCK.sub(fill, text)
    for cmd in sorted(wanted - seen):
        problems.append(
            f"docs/cli.md has no `<!-- generated: {cmd} --help -->` block: add a section"
        )
    return new, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    new, problems = render(text)
    if args.check and new != text:
        problems.append("docs/cli.md is out of date with the commands' --help: run `make docs`")
    elif not args.check and new != text:
        DOC.write_text(new, encoding="utf-8")
        print(f"updated {DOC}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
