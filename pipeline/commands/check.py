"""Check params.yaml and the files it names, without running anything (and without TensorFlow).

``python -m pipeline.commands.check [--params FILE] [TASK ...]`` validates every key of the params file,
then every task's data files (or only the named tasks') and the backbones' source files. It prints
``params.yaml: OK (11 tasks, 2 backbones)``, or one ``error: file:line: key.path: reason; hint: ...``
line per problem on stderr and exits with status 2. It takes about a second. It also links the folders
outside the project that params name into ``.dvc/tmp/exps/`` for DVC's temporary copies
(:mod:`pipeline.config.workspace`); ``--links-only`` does only that.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.errors import ConfigError, shown_path
from pipeline.config.loading import load_params
from pipeline.config.workspace import link_outside_folders
from pipeline.config.preflight import check_all, check_backbone, check_task, require
from pipeline.runtime.log_setup import configure_logging


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.commands.check",
        description="Validate params.yaml and the data files and backbone sources it names.",
    )
    parser.add_argument("tasks", nargs="*", metavar="TASK", help="only these tasks (and their backbones); default: all")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--links-only", action="store_true",
                        help="only link the folders outside the project that DVC's temporary copies need")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        for problem in link_outside_folders(params, args.params.resolve().parent):
            print(f"warning: {problem}", file=sys.stderr)
        if args.links_only:
            return 0
        if args.tasks:
            problems: list[str] = []
            backbones = dict.fromkeys(params.tasks[t].backbone for t in args.tasks if t in params.tasks)
            for task in args.tasks:
                problems += check_task(params, task, args.params, backbone=False)
            for name in backbones:
                problems += check_backbone(params, name, args.params)
            n_tasks, n_backbones = len(args.tasks), len(backbones)
        else:
            problems = check_all(params, args.params)
            n_tasks, n_backbones = len(params.tasks), len(params.backbones)
        require(problems)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        print(f"{shown_path(args.params)}: {len(lines)} problem{'s' * (len(lines) != 1)}", file=sys.stderr)
        return 2
    print(f"{shown_path(args.params)}: OK ({_count(n_tasks, 'task')}, {_count(n_backbones, 'backbone')})")
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


if __name__ == "__main__":
    sys.exit(main())
