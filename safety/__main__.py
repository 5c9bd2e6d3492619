"""Command line of the safety layer: `python -m safety COMMAND ...`.

Each command lives in the module named after what it does; this file only dispatches.
"""
from __future__ import annotations

import importlib
import sys

# command -> module that defines `cli(argv: list[str]) -> int`
COMMANDS = {
    "gallery": "safety.likeness",
    "screen": "safety.likeness",
    "measure": "safety.likeness",
    "audit": "safety.audit",
    "verify": "safety.verify",
    "detect": "safety.detector",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m safety {" + ",".join(COMMANDS) + "} ...", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]])
    return int(module.cli(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
