"""Command line of the safety layer: `python -m safety COMMAND ...`.

Each command lives in the module named after what it does, as `cli(argv: list[str]) -> int` (the
convention of every command line in the project, `vasa_core.__main__.cli` included); this file only dispatches.
"""
from __future__ import annotations

import importlib
import sys

# command -> module that defines `cli(argv: list[str]) -> int`
COMMANDS = {
    "gallery": "safety.likeness",
    "screen": "safety.likeness",
    "measure": "tools.evals.likeness",
    "audit": "safety.audit",
    "verify": "safety.verify",
    "detect": "safety.detector",
}


def cli(argv: list[str] | None = None) -> int:
    """`python -m safety COMMAND ...` / `vasa-safety COMMAND ...`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m safety {" + ",".join(COMMANDS) + "} ...", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]])
    return int(module.cli(argv) or 0)


main = cli   # the name older callers use


if __name__ == "__main__":
    sys.exit(cli())
