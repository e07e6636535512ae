"""params.yaml read in one place into typed, frozen objects.

Unknown keys, wrong types and dangling references are rejected one line per problem, with the
file, line, key path and a hint, e.g.
``params.yaml:43: tasks.sst2.epochs: Input should be a valid integer (got 'three'); hint: write a
whole number, e.g. 'epochs: 3'``. The hyper-parameters of ``defaults:`` are merged into every task
here (a task's own key wins, ``head`` is merged key by key), so each task's
:class:`~pipeline.config.schema.TaskConfig` holds the values it runs with; a bad value a task
inherits is reported at its line in ``defaults``. Files the params name (data, backbones) are
checked by :mod:`pipeline.config.preflight`. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from pipeline.config.errors import ConfigError
from pipeline.config.messages import describe_errors
from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.schema import INHERITED, MERGED_PER_KEY, Params
from pipeline.config.yaml_source import plain, read_yaml, with_defaults


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read params.yaml, merge ``defaults:`` into every task and validate; raise :class:`ConfigError`,
    one line per problem: ``file:line: key.path: reason; hint: ...``."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        return Params.model_validate(with_defaults(plain(raw), INHERITED, MERGED_PER_KEY))
    except ValidationError as exc:
        raise ConfigError("\n".join(describe_errors(exc.errors(), raw, path))) from None
