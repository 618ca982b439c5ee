"""`motcua`: run the system (embedded or one service per process) and operate it."""

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from motcua.commands import MODULES
from services.logging import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motcua", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    configure_logging(os.environ.get("MOTCUA_LOG_LEVEL", "INFO"))
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        logging.getLogger("motcua").info("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
