"""The ``batchsem`` console script and ``python -m batchsem``: a standard-library-only shim.

``pip install batchsem`` installs the library alone; the command-line tool needs
the ``cli`` extra. The console script exists either way, so this module checks
that the tool's dependencies are importable before it loads ``batchsem.cli``:
without them it prints one line naming what to install and exits 2, never a
traceback.
"""

from __future__ import annotations

import importlib.util
import sys

# (module imported by the tool, distribution that provides it) for the `cli` extra.
# uvloop is optional even with the extra (not on Windows or PyPy), so it is not required.
TOOL_REQUIREMENTS = (
    ("click", "click"),
    ("rich", "rich"),
    ("pyperf", "pyperf"),
    ("hdrh", "hdrhistogram"),
)

HINT = "pip install 'batchsem[cli]'"


def missing_requirements() -> list[str]:
    """Distributions of the ``cli`` extra whose modules cannot be found (none imported)."""
    return [dist for module, dist in TOOL_REQUIREMENTS if importlib.util.find_spec(module) is None]


def main() -> None:
    """Run the tool, or exit 2 with one line if its extra is not installed."""
    missing = missing_requirements()
    if missing:
        sys.stderr.write(
            f"batchsem: error: the command-line tool needs {', '.join(missing)}: "
            f"{HINT} (the library, 'import batchsem', works without it)\n"
        )
        sys.exit(2)
    from batchsem.cli import main as cli_main

    cli_main()
