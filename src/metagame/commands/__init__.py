"""Command-line commands (one module each: ``add_parser(subparsers)``, ``run(args) -> int``)."""
