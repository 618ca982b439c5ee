"""Subcommands of `motcua`, one module each; every module has `register(subparsers)`."""

# Add a module here to add its subcommands to `motcua` (kept in one list on purpose: the
# order is the order `motcua --help` lists them in).
MODULES = [
    "motcua.commands.run",
    "motcua.commands.simulate",
    "motcua.commands.deadletters",
    "motcua.commands.metrics_admin",
    "motcua.commands.clients",
]
