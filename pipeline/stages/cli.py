"""What every stage entry point shares: argument parsing, the preflight check and one-line error messages.

Every stage validates params.yaml and the files it names (:mod:`pipeline.config.preflight`) before it
does any work, so a bad key, value, data file or backbone stops it in about a second, before
TensorFlow is imported: each problem is one ``error: file:line: key.path: reason; hint: ...`` line
on stderr, exit status 2. SIGINT and SIGTERM stop a stage at any moment with exit status 130 and
one line on stderr (:mod:`pipeline.runtime.interrupts`), never with a traceback and never with status 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn

from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.errors import ConfigError
from pipeline.config.schema import Params
from pipeline.config.workspace import link_outside_folders
from pipeline.config.loading import load_params
from pipeline.runtime import stage_timing
from pipeline.runtime.interrupts import install_stop_handlers
from pipeline.runtime.log_setup import configure_logging
from pipeline.data.readers import DataError

#: errors caused by the user's params or data: reported in one line each, exit status 2
USER_ERRORS = (ConfigError, DataError, FileNotFoundError)


def fail(exc: BaseException) -> NoReturn:
    """Print ``exc`` as ``error: ...`` lines (one per problem) on stderr and exit with status 2."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"error: {line}", file=sys.stderr)
    sys.exit(2)


def run_stage(description: str, what: str, action: Callable[[Params, str], object]) -> None:
    """Parse ``<name> [--params FILE]``, load and preflight-check params, run ``action(params, name)``.

    ``what`` is ``"task"`` or ``"backbone"``: the task check covers the task's data files and its
    backbone's source files, the backbone check that backbone's source files.
    """
    from pipeline.config.preflight import check_stage

    configure_logging()
    install_stop_handlers()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(what, help=f"the {what} to process, as named in params.yaml")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    args = parser.parse_args()
    name = getattr(args, what)
    try:
        params = load_params(args.params)
        link_outside_folders(params)  # for DVC's temporary copies (dvc exp run --temp / --queue)
        check_stage(params, what, name, args.params)
        stage_timing.mark_started_up()
        action(params, name)
        stage = Path(sys.argv[0]).stem
        entry = stage_timing.record(stage, name)
        spent = ", ".join(f"{key} {value:.1f}" for key, value in entry["phases"].items() if value >= 0.1)
        print(f"[{stage}] {name}: {entry['seconds']:.1f} s ({spent})", flush=True)
    except USER_ERRORS as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        reason = str(exc) or "SIGINT"
        print(f"interrupted ({reason}): {what} {name!r} stopped; nothing of this stage is recorded as finished. "
              "Run `dvc repro` again to continue (training resumes after its last completed epoch).",
              file=sys.stderr, flush=True)
        sys.exit(130)
