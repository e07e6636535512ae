"""The architecture's promises, checked from the source.

* Every DVC stage lists the code it runs: its import closure (imports inside functions and the kind
  package the registry loads by name included) is covered by the stage's deps in dvc.yaml, and a
  dvc.yaml missing a folder fails the check.
* Stages depend on no code they never run: editing BIO decoding re-runs only sequence labeling.
* The package has no import cycles.
* A new kind is one module plus one registry line: config checking, data health and a tiny training
  accept a toy kind registered in one place.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pipeline.config.loading import load_params
from pipeline.config.paths import PROJECT_ROOT
from pipeline.runtime.code_closure import imports_of, module_path, stage_code
from tests.tiny_project import make_tiny_backbone

TASK_STAGES = ("prepare", "validate", "train", "evaluate")
BIO_DECODING = Path("pipeline/kinds/sequence_labeling/decoding.py")


def stage_deps() -> dict[str, list[str]]:
    """dvc.yaml's code deps (``pipeline/...``) per stage template, unresolved."""
    stages = YAML(typ="safe").load(PROJECT_ROOT / "dvc.yaml")["stages"]
    return {name: [d for d in stage["do"]["deps"] if d.startswith("pipeline")] for name, stage in stages.items()}


def task_kinds() -> dict[str, str]:
    return {task: cfg.kind for task, cfg in load_params().tasks.items()}


def resolve(deps: list[str], kind: str | None) -> list[Path]:
    return [Path(dep.replace("${item.kind}", kind or "")) for dep in deps]


def covered(path: Path, deps: list[Path]) -> bool:
    return any(path == dep or dep in path.parents for dep in deps)


def uncovered(stage: str, deps: list[str], kind: str | None) -> list[str]:
    """Files of the stage's closure for a task of ``kind`` that no dep covers."""
    resolved = resolve(deps, kind)
    return [str(path) for path in stage_code(stage, kind) if not covered(path, resolved)]


def cases() -> list[tuple[str, str | None]]:
    """(stage, kind) of every stage DVC generates from params.yaml (one per kind is enough)."""
    return [("backbone", None), ("pretrain", None)] + [(stage, kind) for stage in TASK_STAGES for kind in sorted(set(task_kinds().values()))]


@pytest.mark.unit
def test_every_stage_lists_its_whole_import_closure() -> None:
    deps = stage_deps()
    missing = {f"{stage}[{kind}]": files for stage, kind in cases() if (files := uncovered(stage, deps[stage], kind))}
    assert not missing, f"dvc.yaml misses code these stages run: {missing}"
    for stage, kind in cases():
        for dep in resolve(deps[stage], kind):
            assert (PROJECT_ROOT / dep).exists(), f"dvc.yaml: {stage} depends on {dep}, which does not exist"


@pytest.mark.unit
def test_a_dvc_yaml_missing_a_folder_fails_the_check() -> None:
    broken = [dep for dep in stage_deps()["train"] if dep != "pipeline/tracking"]
    missing = uncovered("train", broken, "sequence_labeling")
    assert "pipeline/tracking/run.py" in missing and "pipeline/tracking/store.py" in missing
    without_kind = [dep for dep in stage_deps()["evaluate"] if dep != "pipeline/kinds/${item.kind}"]
    assert "pipeline/kinds/relation_extraction/kind.py" in uncovered("evaluate", without_kind, "relation_extraction")


@pytest.mark.unit
def test_stages_depend_on_no_code_they_never_run() -> None:
    deps = stage_deps()
    for stage, templates in deps.items():
        assert "pipeline" not in templates and not any(d.startswith("pipeline/commands") for d in templates), stage
        kinds = [d for d in templates if d.startswith("pipeline/kinds/") and d.split("/")[2] not in ("common", "factory.py", "__init__.py", "${item.kind}")]
        assert not kinds, f"{stage} names a kind's folder instead of ${{item.kind}}: {kinds}"
    for stage, templates in deps.items():
        kinds = [kind for name, kind in cases() if name == stage]
        for template in templates:
            used = [kind for kind in kinds if any(covered(path, resolve([template], kind)) for path in stage_code(stage, kind))]
            assert used, f"{stage} depends on {template}, which no task of the stage runs"


@pytest.mark.unit
def test_editing_bio_decoding_reruns_only_the_sequence_labeling_tasks_train_and_evaluate() -> None:
    deps = stage_deps()
    affected = {
        (stage, task)
        for task, kind in task_kinds().items()
        for stage in TASK_STAGES
        if covered(BIO_DECODING, resolve(deps[stage], kind))
    }
    labeling = [task for task, kind in task_kinds().items() if kind == "sequence_labeling"]
    assert labeling and affected == {(stage, task) for task in labeling for stage in ("train", "evaluate")}
    assert not covered(BIO_DECODING, resolve(deps["backbone"], None))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle depth-first search meets in ``graph`` (module -> imported modules)."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted((PROJECT_ROOT / "pipeline").rglob("*.py")):
        module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = {name for name in imports_of(path, module) if name != module and module_path(name)}
    return graph


@pytest.mark.unit
def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 80 and "pipeline.kinds.factory" in graph["pipeline.stages.train"]
    assert find_cycles(graph) == []
    # the check itself finds a cycle when there is one
    assert find_cycles({**graph, "pipeline.text.spans": graph["pipeline.text.spans"] | {"pipeline.stages.train"}})


@pytest.mark.unit
def test_a_resumed_training_is_fingerprinted_by_the_train_stages_code() -> None:
    files = stage_code("train", "span_extraction")
    assert Path("pipeline/kinds/span_extraction/kind.py") in files and Path("pipeline/training/trainer.py") in files
    assert not any(part in str(path) for path in files for part in ("commands", "sequence_labeling", "data_health/fatal"))


# --- a toy kind, registered in one place -------------------------------------------------------

TOY = "keyword_flag"


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.kinds import REGISTRY, KindSpec

    monkeypatch.setitem(REGISTRY, TOY, KindSpec(TOY, "tests.toy_kind", ("id", "text", "flag"), label_keys=("flag",), label_field="flag"))


def toy_params(tmp_path: Path, head: str = "threshold: 0.4") -> Path:
    text = (PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8")
    params = YAML()
    data = params.load(text)
    block = dict(data["tasks"]["sst2"])
    block.update(kind=TOY)
    data["tasks"] = {"flags": block}
    data["data_root"] = str(PROJECT_ROOT / data["data_root"])
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "params.yaml"
    with path.open("w", encoding="utf-8") as handle:
        params.dump(data, handle)
    path.write_text(path.read_text(encoding="utf-8").replace("    kind: keyword_flag\n", f"    kind: keyword_flag\n    head: {{{head}}}\n"), encoding="utf-8")
    return path


def toy_records(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    hot, cold = "好棒赞美喜欢满意", "差烂坏糟讨厌失望"
    return [
        {"id": f"r{i}", "text": "".join(rng.choice(hot if i % 2 else cold) for _ in range(rng.randint(4, 16))),
         "flag": "yes" if i % 2 else "no"}
        for i in range(n)
    ]


@pytest.mark.model
def test_a_toy_kind_registered_in_one_place_is_checked_health_checked_and_trained(
    toy_registered: None, tmp_path: Path, zh_vocab: Path
) -> None:
    from pipeline.config.errors import ConfigError
    from pipeline.data_health.fatal import find_problems
    from pipeline.data_health.report import build_health
    from pipeline.data_health.truncation import char_kept
    from pipeline.kinds.factory import build_kind
    from pipeline.runtime import tf_runtime
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.training.modeling import build_task_model
    from pipeline.training.trainer import DevEvaluation, encode_all, fit

    # config checking: the kind's options are validated, with the line of a bad one
    cfg = load_params(toy_params(tmp_path)).task("flags")
    assert cfg.kind == TOY and cfg.head_options.threshold == 0.4
    with pytest.raises(ConfigError, match=r"params.yaml:\d+: tasks.flags.head.threshold: .*less than 1"):
        load_params(toy_params(tmp_path / "bad", "threshold: 3"))

    # data health: the registry's required fields and labels
    train, dev = toy_records(48, 0), toy_records(16, 1)
    broken = [{"id": "x", "text": "好"}]
    assert [(p.field, p.what) for p in find_problems({"train": broken}, TOY)] == [("flag", "missing")]
    health = build_health("flags", cfg, {"train": train, "dev": dev, "test": dev}, {}, char_kept, "char")
    assert health["label_field"] == "flag" and health["splits"]["train"]["labels"] == {"no": 24, "yes": 24}

    # a tiny training, through the same machinery as every kind
    backbone = make_tiny_backbone(tmp_path / "tiny", zh_vocab)
    cfg = cfg.model_copy(update={"epochs": 2, "batch_size": 8, "maxlen": 24, "language": "zh"})
    kind = build_kind(cfg)
    tokenizer = build_tokenizer("zh", backbone / "vocab.txt", True)
    labels = kind.label_space(train, cfg)
    train_features = encode_all(kind, train, tokenizer, labels, cfg.maxlen, "train")
    dev_features = encode_all(kind, dev, tokenizer, labels, cfg.maxlen, "dev")
    tf_runtime.set_seed(cfg.seed)
    model = build_task_model(kind, backbone / "bert_config.json", backbone / "bert_model.ckpt", "bert", labels, cfg)
    rows: list[dict] = []
    evaluation = DevEvaluation(kind, dev, dev_features, labels, 8, tmp_path / "model.weights.h5", rows.append)
    fit(kind, model, cfg, train_features, evaluation)
    assert [row["epoch"] for row in rows] == [1, 2] and all(0.0 <= row["dev_accuracy"] <= 1.0 for row in rows)
    predictions = kind.predict(model, dev, dev_features, labels, 8)
    assert len(predictions) == len(dev) and {p["flag"] for p in predictions} <= {"yes", "no"}
