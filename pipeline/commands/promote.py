"""``python -m pipeline.commands.promote <task>``: make a registered model version the task's champion, if it is better.

    python -m pipeline.commands.promote sst2                  # the newest version against the champion
    python -m pipeline.commands.promote sst2 --candidate 4    # another version
    python -m pipeline.commands.promote sst2 --dry-run        # the same report; no alias moved, no tag set
    python -m pipeline.commands.promote sst2 --confidence 0.99

The evaluate stage registers every model it logs as a new version of the registered model named like the
task (:mod:`pipeline.tracking.registry`); the alias ``champion`` marks the version to serve
(``python -m pipeline.commands.predict --model-uri models:/sst2@champion "..."``, ``serve --model-uri``).
With no champion yet, the candidate becomes the first one. Otherwise both versions predict the task's dev
split (``data/prepared/<task>/dev.jsonl`` cut to ``max_dev_samples``, as training does: the test split stays
out of model selection) and the paired bootstrap of :mod:`pipeline.significance.bootstrap` gives
delta = candidate - champion of the task's selection metric, its confidence interval and a p-value. The
candidate is promoted (the alias moves to it) only when the interval's lower bound is above 0. The
decision and its figures are tagged on the candidate version (``promotion.decision``, ``promotion.delta``,
``promotion.ci_low``, ...). Exit status: 0 promoted or first champion, 1 refused, 2 a user error (one
line ``error: ...`` on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from pipeline.commands.compare import confidence_level, level
from pipeline.config.errors import ConfigError, shown_path
from pipeline.config.loading import load_params
from pipeline.config.paths import prepared_dir
from pipeline.config.schema import Params, TaskConfig
from pipeline.data.readers.files import DataError
from pipeline.runtime.log_setup import configure_logging
from pipeline.tracking.redaction import fail_fast_commands
from pipeline.significance.bootstrap import Comparison, Predictions, Scorer, paired_difference, planned_steps
from pipeline.tracking.registry import FIRST_CHAMPION

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from pipeline.serving.bundle import TaskBundle

PROMOTED = "promoted"
REFUSED = "refused"
FIRST = FIRST_CHAMPION
#: exit status of each decision
EXIT = {PROMOTED: 0, FIRST: 0, REFUSED: 1}
USER_ERROR = 2
RESAMPLES = 1000


class PromoteError(ValueError):
    """A promotion that cannot be decided (no such model or version, no dev split); one line."""


@dataclass(frozen=True)
class Decision:
    """What happens to the candidate, and the comparison that decided it (None for a first champion)."""

    decision: str  #: :data:`PROMOTED`, :data:`REFUSED` or :data:`FIRST`
    comparison: Comparison | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.commands.promote",
        description="Move the alias 'champion' of a task's registered model to a candidate version, only if it\n"
        "beats the champion on the dev split beyond noise (paired bootstrap).",
        epilog="exit status: 0 promoted or first champion, 1 refused, 2 a user error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", help="a task of params.yaml (its registered model has the same name)")
    parser.add_argument("--candidate", type=int, metavar="VERSION",
                        help="the version to promote (default: the newest version)")
    parser.add_argument("--confidence", type=confidence_level, default=0.95,
                        help="confidence level of the interval (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="report only: move no alias, set no tag")
    return parser


# --- the decision ------------------------------------------------------------------------------------------


def decide(records: Sequence[dict], champion: Predictions, candidate: Predictions, score: Scorer, metric: str, *,
           confidence: float = 0.95, n_resamples: int = RESAMPLES,
           on_step: Callable[[], object] | None = None) -> Decision:
    """Promote ``candidate`` only when the ``confidence`` interval of its gain over ``champion`` on
    ``records`` (paired bootstrap of ``score``) lies above 0."""
    comparison = paired_difference(records, [champion], [candidate], score, metric, n_resamples=n_resamples,
                                   confidence=confidence, on_step=on_step)
    return Decision(PROMOTED if comparison.ci_low > 0 else REFUSED, comparison)


def promotion_tags(decision: Decision, champion: int | None) -> dict[str, str]:
    """The ``promotion.*`` tags of the candidate version."""
    tags = {"promotion.decision": decision.decision}
    c = decision.comparison
    if c is not None:
        figures = {"delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
                   "confidence": c.confidence}
        tags |= {f"promotion.{key}": f"{value:.6g}" for key, value in figures.items()}
        tags |= {"promotion.champion_version": str(champion), "promotion.metric": c.metric,
                 "promotion.dev_examples": str(c.n_examples)}
    return tags


# --- the registry and the dev split ------------------------------------------------------------------------


def open_registry(params: Params, task: str) -> tuple[MlflowClient, str]:
    """A client of the tracking store (the registry lives there) and how messages name the store."""
    import mlflow

    from pipeline.tracking.redaction import shown_uri
    from pipeline.tracking.store import open_store, sqlite_database

    uri = params.tracking_uri()
    store = shown_uri(uri)
    database = sqlite_database(uri)
    if database is not None and not database.is_file():  # never create an empty store
        raise PromoteError(no_model(task, store))
    open_store(uri)  # a copied or moved project: its local store's artifacts are found where they are now
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri), store


def no_model(task: str, store: str) -> str:
    return f"no registered model {task!r} in {store}; hint: run dvc repro evaluate@{task}"


def pick_versions(
    client: MlflowClient, task: str, store: str, wanted: int | None
) -> tuple[ModelVersion, ModelVersion | None]:
    """The candidate (``wanted``, else the newest version) and the champion (None: there is none yet)."""
    from pipeline.tracking.registry import champion, task_versions

    versions = task_versions(client, task)
    if not versions:
        raise PromoteError(no_model(task, store))
    if wanted is None:
        return versions[-1], champion(client, task)
    for version in versions:
        if int(version.version) == wanted:
            return version, champion(client, task)
    raise PromoteError(f"no version {wanted} of registered model {task!r} in {store} "
                       f"(versions: {', '.join(str(v.version) for v in versions)})")


def dev_records(task: str, cfg: TaskConfig) -> list[dict]:
    """The task's prepared dev split, cut to ``max_dev_samples`` as the train stage cuts it."""
    from pipeline.reporting.files import read_jsonl

    path = prepared_dir(task) / "dev.jsonl"
    if not path.is_file():
        raise PromoteError(f"{shown_path(path)}: no prepared dev split; hint: run dvc repro prepare@{task}")
    records = read_jsonl(path)[: cfg.max_dev_samples]
    if not records:
        raise PromoteError(f"{shown_path(path)}: the dev split is empty; nothing to compare the versions on")
    return records


def dev_predictions(bundle: TaskBundle, records: list[dict]) -> list[dict]:
    """``bundle``'s predictions of ``records`` (its own maxlen, labels and decoding)."""
    from pipeline.runtime import tf_runtime
    from pipeline.training.trainer import encode_all

    cfg = bundle.cfg
    features = encode_all(bundle.kind, records, bundle.tokenizer(), bundle.labels, cfg.maxlen, "dev")
    predictions = bundle.kind.predict(bundle.load_model(), records, features, bundle.labels, cfg.batch_size * 2)
    tf_runtime.keras.backend.clear_session()
    return predictions


def version_predictions(task: str, version: ModelVersion, records: list[dict], store: str,
                        workdir: Path) -> tuple[TaskBundle, list[dict]]:
    """Download ``version``'s bundle into ``workdir`` and predict ``records`` with it."""
    from mlflow.exceptions import MlflowException

    from pipeline.serving.bundle import read_bundle
    from pipeline.tracking.registry import download_bundle

    try:
        bundle = read_bundle(download_bundle(task, version.version, workdir / str(version.version)))
    except (MlflowException, OSError, KeyError) as exc:
        raise PromoteError(f"cannot read version {version.version} of {task!r} from {store} ({first_line(exc)}); "
                           f"hint: is its model's artifact store reachable from here?") from None
    return bundle, dev_predictions(bundle, records)


def first_line(exc: BaseException) -> str:
    """An exception's first line, with any URI in it redacted."""
    from pipeline.tracking.redaction import scrub

    return scrub((str(getattr(exc, "message", exc)).strip().splitlines() or [type(exc).__name__])[0])[:300]


# --- the command -----------------------------------------------------------------------------------------------


def compare_versions(task: str, cfg: TaskConfig, champion: ModelVersion, candidate: ModelVersion, store: str,
                     confidence: float) -> Decision:
    """Both versions predict the dev split; :func:`decide` on the task's selection metric."""
    from tqdm import tqdm

    from pipeline.kinds.factory import build_kind

    records = dev_records(task, cfg)
    kind = build_kind(cfg)
    metric = kind.selection_metric(cfg)
    with tempfile.TemporaryDirectory(prefix="promote-") as workdir:
        old_bundle, old = version_predictions(task, champion, records, store, Path(workdir))
        new_bundle, new = version_predictions(task, candidate, records, store, Path(workdir))
    labels = list(dict.fromkeys([*new_bundle.labels, *old_bundle.labels]))

    def score(chosen: Sequence[dict], predictions: Sequence[dict]) -> float:
        return kind.score(chosen, predictions, labels)[metric]

    # shown after 3 s, on a terminal only (disable=None)
    with tqdm(total=planned_steps(len(records), 1, 1, RESAMPLES), desc=f"resampling {len(records)} dev examples",
              unit="resample", file=sys.stderr, delay=3, leave=False, disable=None) as bar:
        return decide(records, old, new, score, metric, confidence=confidence, on_step=bar.update)


def render(task: str, store: str, champion: ModelVersion, candidate: ModelVersion, c: Comparison) -> str:
    """The two versions' dev figures, the delta, its interval and p-value."""
    table = [["role", "version", "run", f"dev {c.metric}"]]
    for role, version, value in (("champion", champion, c.a), ("candidate", candidate, c.b)):
        table.append([role, str(version.version), (version.run_id or "-")[:8], f"{value:.4f}"])
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    return "\n".join([
        f"{task}: registered model {task!r} in {store}, {c.metric} on {c.n_examples} dev examples",
        "",
        *("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table),
        "",
        f"delta = candidate - champion = {c.delta:+.4f} {c.metric}",
        f"{level(c)} CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}] (paired bootstrap, {c.n_resamples} resamples); "
        f"p = {c.p_value:.3g} ({c.p_test})",
    ])  # fmt: skip


def verdict(task: str, decision: Decision, candidate: int, champion: int | None, dry_run: bool) -> str:
    """One line: what happened to the candidate (or would have, with ``--dry-run``)."""
    name = f"version {candidate} of {task!r}"
    becomes = "would become" if dry_run else "is now"
    c = decision.comparison
    why = "" if c is None else f" ({level(c)} CI of the gain {'lies' if c.ci_low > 0 else 'does not lie'} above 0)"
    if decision.decision == FIRST:
        said = f"{name} {becomes} the champion (there was none)"
    elif decision.decision == PROMOTED:
        said = f"{name} beats champion version {champion} beyond noise{why}: it {becomes} the champion"
    else:
        said = f"{name} does not beat champion version {champion} beyond noise{why}: the champion stays"
    return f"{'dry run: ' if dry_run else ''}{decision.decision}: {said}"


def record(client: MlflowClient, task: str, candidate: int, champion: int | None, decision: Decision) -> None:
    """Tag the candidate with the decision and, when it wins, move the alias to it."""
    from pipeline.tracking.registry import CHAMPION

    for key, value in promotion_tags(decision, champion).items():
        client.set_model_version_tag(task, str(candidate), key, value)
    if decision.decision in (PROMOTED, FIRST):
        client.set_registered_model_alias(task, CHAMPION, str(candidate))


def promote(args: argparse.Namespace, params: Params) -> int:
    """Pick the versions, decide, print, record; the exit status of the decision."""
    cfg = params.task(args.task)
    client, store = open_registry(params, args.task)
    candidate, champion = pick_versions(client, args.task, store, args.candidate)
    new, old = int(candidate.version), None if champion is None else int(champion.version)
    if new == old:
        print(f"{REFUSED}: version {new} of {args.task!r} is already the champion: nothing to compare it with; "
              f"hint: --candidate VERSION")
        return EXIT[REFUSED]
    if champion is None:
        decision = Decision(FIRST)
    else:
        decision = compare_versions(args.task, cfg, champion, candidate, store, args.confidence)
        print(render(args.task, store, champion, candidate, decision.comparison))
    if not args.dry_run:
        record(client, args.task, new, old, decision)
    print(verdict(args.task, decision, new, old, args.dry_run))
    return EXIT[decision.decision]


def main(argv: list[str] | None = None) -> int:
    """Command line: the exit status of the decision, 2 with one line on stderr for a user error."""
    configure_logging()
    args = build_parser().parse_args(argv)
    fail_fast_commands()
    try:
        return promote(args, load_params())
    except (PromoteError, ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except Exception as exc:  # MLflow's own errors (an unreachable store, a refused call): one line, no traceback
        exceptions = sys.modules.get("mlflow.exceptions")
        if exceptions is None or not isinstance(exc, exceptions.MlflowException):
            raise
        print(f"error: the model registry refused: {first_line(exc)}", file=sys.stderr)
    return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
