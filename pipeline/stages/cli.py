"""What every stage entry point shares: argument parsing and one-line error messages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from pipeline.config import DEFAULT_PARAMS, ConfigError, Params, load_params
from pipeline.readers import DataError

#: errors caused by the user's params or data: reported in one line, exit status 2
USER_ERRORS = (ConfigError, DataError, FileNotFoundError)


def run_stage(description: str, what: str, action: Callable[[Params, str], object]) -> None:
    """Parse ``<name> [--params FILE]``, load params and run ``action(params, name)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(what, help=f"the {what} to process, as named in params.yaml")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    args = parser.parse_args()
    try:
        params = load_params(args.params)
        action(params, getattr(args, what))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
