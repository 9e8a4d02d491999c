"""Subcommands beyond the core ones; each module has `register(subparsers, add_client_args)`."""
