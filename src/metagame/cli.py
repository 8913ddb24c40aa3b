"""Command line: ``metagame <command> ...``. The core commands live in :mod:`metagame.commands`, the\ndomains' commands in their packages (:data:`metagame.domains.DOMAINS`)."""

from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__
from .domains import domain_commands
from .errors import MetagameError

#: command -> module; each module defines ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> int``.
#: The domains register theirs in :data:`metagame.domains.DOMAINS`; the core adds the demo and evaluation.
COMMANDS: dict[str, str] = {
    **domain_commands(),
    "demo": "metagame.commands.demo",
    "evaluate": "metagame.commands.evaluate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metagame",
        description="Second-order explanations: how much player j moves the attribution of player i.",
    )
    parser.add_argument("--version", action="version", version=f"metagame {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, path in COMMANDS.items():
        module = importlib.import_module(path)
        p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from .commands.common import fail

    try:
        return int(args._run(args) or 0)
    except MetagameError as e:
        return fail(args.command, e)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
