"""User mistakes that used to end in a traceback (or in a crash an epoch later) are one line each,
naming the file, line or field, with a hint: an empty split, a bad input file for the predict
command, a bad row sent to the served model, an unknown task or run, an absolute ``data.dir``."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.errors import ConfigError
from pipeline.config.schema import Params
from pipeline.config.loading import load_params
from pipeline.serving.mlflow_model import TaskModel
from pipeline.data.readers import DataError
from pipeline.data.readers.base import CarveSpec
from pipeline.serving.predictor import TaskPredictor
from pipeline.stages.cli import USER_ERRORS
from tests.helpers import edited, line_of

# --- 1. an empty split stops the validate stage, before training ---------------------------------

SST2_FILES = {"train": "stsa.binary.train", "dev": "stsa.binary.dev", "test": "stsa.binary.test"}


def params_on(tmp_path: Path, files: dict[str, str], **data_lines: str) -> Params:
    """The project's params with an absolute data_root in ``tmp_path`` holding sst2's split files
    (``data_lines``: replacements in params.yaml)."""
    directory = tmp_path / "data" / "en" / "sst2"
    directory.mkdir(parents=True)
    for split, text in files.items():
        (directory / SST2_FILES[split]).write_text(text, encoding="utf-8")
    path = edited(tmp_path, "data_root: ../shared/data", f"data_root: {tmp_path / 'data'}")
    for old, new in data_lines.items():
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_params(path)


@pytest.fixture()
def stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The prepare and validate stages writing under ``tmp_path``."""
    from pipeline.data_health import fatal
    from pipeline.stages import prepare, validate

    for module in (prepare, validate, fatal):
        monkeypatch.setattr(module, "prepared_dir", lambda task: tmp_path / "prepared" / task)
    monkeypatch.setattr(validate, "reports_dir", lambda task: tmp_path / "reports" / task)
    return prepare, validate


GOOD = "1 a gripping film\n0 a dull film\n1 funny and warm\n0 slow\n"


@pytest.mark.unit
def test_an_empty_dev_split_passes_prepare_and_stops_validate_naming_split_file_and_task(
    tmp_path: Path, stages
) -> None:
    prepare, validate = stages
    params = params_on(tmp_path, {"train": GOOD, "dev": "1 \n0  \n\n", "test": GOOD})
    summary = prepare.prepare(params, "sst2")
    assert summary["records"]["dev"] == 0  # the reader skipped every line: nothing else noticed it
    dev_file = params.data_dir("sst2") / SST2_FILES["dev"]
    with pytest.raises(DataError) as error:
        validate.validate(params, "sst2")
    message = str(error.value)
    assert isinstance(error.value, USER_ERRORS)  # one line, exit status 2
    assert message.startswith(
        f"{dev_file}: split 'dev' of task 'sst2' is empty (the reader skipped 3 rows (empty text: 2, empty line: 1)); "
        "hint: fill the file, or carve dev out of train: remove 'dev: stsa.binary.dev' from tasks.sst2.data and set "
        "'carve: {dev_fraction: 0.1, test_fraction: 0.0, seed: 1}'"
    ), message
    assert "\n" not in message
    report = json.loads((tmp_path / "reports" / "sst2" / "data_health.json").read_text(encoding="utf-8"))
    assert report["fatal"] == [message]
    # the carve the hint suggests is valid params: dev comes from train
    carve = re.search(r"'carve: \{dev_fraction: (\S+), test_fraction: (\S+), seed: (\d+)\}'", message)
    source = params.task("sst2").data.model_validate({
        **params.task("sst2").data.model_dump(), "dev": None,
        "carve": CarveSpec(dev_fraction=float(carve[1]), test_fraction=float(carve[2]), seed=int(carve[3])),
    })
    assert source.carve is not None and source.dev is None


@pytest.mark.unit
def test_a_split_emptied_by_dedupe_and_an_empty_test_file_are_fatal(tmp_path: Path, stages) -> None:
    prepare, validate = stages
    # dedupe 'across' drops dev examples whose text is in test: here, all of them
    params = params_on(tmp_path / "a", {"train": GOOD, "dev": "0 slow\n", "test": "0 slow\n1 warm\n"},
                       **{"      label_names": "      dedupe: across\n      label_names"})
    prepare.prepare(params, "sst2")
    with pytest.raises(DataError) as error:
        validate.validate(params, "sst2")
    assert str(error.value) == (
        f"{params.data_dir('sst2') / SST2_FILES['dev']}: split 'dev' of task 'sst2' is empty (data.dedupe 'across' "
        "removed 1 (input in test: 1)); hint: set tasks.sst2.data.dedupe to 'within' or 'none', "
        "or add data to this split"
    )
    # an empty test file, and an empty dev file beside it: the first is named, the count of the rest follows
    params = params_on(tmp_path / "b", {"train": GOOD, "dev": "", "test": ""})
    prepare.prepare(params, "sst2")
    with pytest.raises(DataError, match=r"split 'dev' of task 'sst2' is empty \(the file holds no records\); .*"
                                        r"\(and 1 more fatal problems, listed in .*data_health.json\)$"):
        validate.validate(params, "sst2")
    report = json.loads((tmp_path / "reports" / "sst2" / "data_health.json").read_text(encoding="utf-8"))
    assert report["fatal"][1] == (
        f"{params.data_dir('sst2') / SST2_FILES['test']}: split 'test' of task 'sst2' is empty (the file holds no "
        "records); hint: fill the file, or carve test out of train: remove 'test: stsa.binary.test' from "
        "tasks.sst2.data and set 'carve: {dev_fraction: 0.0, test_fraction: 0.1, seed: 1}'"
    )


@pytest.mark.unit
def test_an_empty_train_file_with_carving_is_one_line_naming_file_and_task(tmp_path: Path, stages) -> None:
    prepare, _ = stages
    params = params_on(
        tmp_path, {"train": "\n\n", "test": GOOD},
        **{"      dev: stsa.binary.dev\n": "      carve: {dev_fraction: 0.1, test_fraction: 0.0, seed: 1}\n"},
    )
    with pytest.raises(DataError) as error:  # was a ValueError traceback
        prepare.prepare(params, "sst2")
    assert str(error.value).startswith(
        f"{params.data_dir('sst2') / SST2_FILES['train']}: tasks.sst2.data.carve: carving 1 of 0 training records"
    )
    assert "hint: lower carve.dev_fraction" in str(error.value) and "empty line" in str(error.value)


# --- 2, 4. the predict command: bad input files, unknown tasks and runs ---------------------------


@pytest.fixture()
def bundles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``models/tasks/`` in ``tmp_path`` with untrained stand-ins for sst2 and ccks_event: enough for the
    predict command to know each task's input fields (its input checks come before the model loads)."""
    import pipeline.config.paths

    params = load_params()
    root = tmp_path / "models" / "tasks"
    for task in ("sst2", "ccks_event"):
        (root / task).mkdir(parents=True)
        meta = {"config": params.task(task).model_dump(), "labels": ["negative", "positive"]}
        (root / task / "task.json").write_text(json.dumps(meta), encoding="utf-8")
        (root / task / "model.weights.h5").write_bytes(b"")
    monkeypatch.setattr(pipeline.config.paths, "task_model_dir", lambda task: root / task)
    return root


def predict_error(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """The stderr of ``python -m pipeline.commands.predict ARGV``, which must exit with status 2 and no traceback."""
    from pipeline.commands import predict

    with pytest.raises(SystemExit) as exit_:
        predict.main(list(argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # MLflow may log INFO lines first
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err
    return errors[0]


@pytest.mark.unit
def test_predict_names_the_line_of_invalid_utf8(tmp_path: Path, bundles: Path, capsys) -> None:
    texts = tmp_path / "f.txt"
    texts.write_bytes(b"a gripping film\n\nsome \xff\xfe text\n")
    assert predict_error(capsys, "sst2", "--file", str(texts)) == (
        f"error: {texts}:3: not valid UTF-8 (byte 5: invalid start byte); "
        "hint: re-save the file as UTF-8, e.g. iconv -f <its encoding> -t UTF-8 FILE > FILE.utf8"
    )
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b'{"text": "ok"}\n{"text": "\xc3("}\n')
    assert predict_error(capsys, "sst2", "--file", str(rows)).startswith(f"error: {rows}:2: not valid UTF-8 (byte 10:")
    table = tmp_path / "rows.csv"
    table.write_bytes(b'text\nok\n"\xe9t\xe9"\n')
    assert predict_error(capsys, "sst2", "--file", str(table)).startswith(f"error: {table}:3: not valid UTF-8")


@pytest.mark.unit
def test_predict_names_a_missing_file_a_line_that_is_not_json_and_a_missing_column(
    tmp_path: Path, bundles: Path, capsys
) -> None:
    missing = tmp_path / "nope.txt"
    err = predict_error(capsys, "sst2", "--file", str(missing))
    assert err.startswith(f"error: {missing}: no such input file; hint:")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a gripping film"}\n\n{"text": "dull",}\n', encoding="utf-8")
    assert predict_error(capsys, "sst2", "--file", str(rows)) == (
        f"error: {rows}:3: not valid JSON (Expecting property name enclosed in double quotes at column 17); "
        'hint: one JSON object per line, e.g. {"text": "..."}'
    )
    rows.write_text('{"text": "a gripping film"}\n{"text": 5}\n', encoding="utf-8")
    assert predict_error(capsys, "sst2", "--file", str(rows)) == (
        f"error: {rows}:2: field 'text' must be a string, got int 5; "
        'hint: write it as a JSON string, e.g. "text": "..."'
    )
    table = tmp_path / "rows.tsv"
    table.write_text("sentence\tlabel\na gripping film\tpositive\n", encoding="utf-8")
    assert predict_error(capsys, "sst2", "--file", str(table)) == (
        f"error: {table}:1: field 'text': no such column in the header (columns: sentence, label); "
        "hint: the first line must name the model's input columns: text"
    )
    # span extraction needs a query: from the file, or --query for every row
    table = tmp_path / "rows.csv"
    table.write_text("query,text\n收购,腾讯收购了搜狗\n,搜狗\n", encoding="utf-8")
    assert predict_error(capsys, "ccks_event", "--file", str(table)).startswith(
        f"error: {table}:3: field 'query' is empty (got ''); hint:"
    )
    texts = tmp_path / "texts.txt"
    texts.write_text("腾讯收购了搜狗\n", encoding="utf-8")
    assert predict_error(capsys, "ccks_event", "--file", str(texts)) == (
        f"error: {texts}:1: field 'query' is missing (this task needs 'query', 'text'); hint: give every row a "
        "'query' field (a .jsonl key or a .csv/.tsv column), or --query for all rows"
    )


@pytest.mark.unit
def test_predict_names_an_unknown_task_with_the_closest_one(capsys) -> None:
    tasks = ", ".join(load_params().tasks)
    assert predict_error(capsys, "sst3", "a film") == (
        f"error: no task 'sst3' in {DEFAULT_PARAMS.name}; did you mean 'sst2'? (tasks: {tasks})"
    )


@pytest.mark.unit
def test_predict_an_untrained_task_says_to_train_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import pipeline.config.paths

    monkeypatch.setattr(pipeline.config.paths, "task_model_dir", lambda task: tmp_path / task)
    assert predict_error(capsys, "sst2", "a film").endswith("hint: run `dvc repro train@sst2`")


@pytest.mark.unit
def test_predict_an_unknown_run_names_the_store_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    # a store that was never created is not created by asking it for a run
    assert predict_error(capsys, "--run-id", "deadbeef", "a film").startswith(
        f"error: no MLflow run 'deadbeef' in {store}: that store does not exist yet; hint:"
    )
    assert not (tmp_path / "mlflow.db").exists()
    mlflow.MlflowClient(store).search_experiments()  # creates the store
    assert predict_error(capsys, "--run-id", "deadbeef", "a film").startswith(
        f"error: no MLflow run 'deadbeef' in {store}; hint: a task's run id is in reports/<task>/mlflow_run.json"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret-pw@127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    err = predict_error(capsys, "--run-id", "deadbeef", "a film")
    assert err.startswith("error: cannot read MLflow run 'deadbeef' from http://alice:***@127.0.0.1:9")
    assert "s3cret-pw" not in err


# --- 3. the served model: a bad row is HTTP 400 with a one-line message, no stack trace ----------


class CheckingPredictor(TaskPredictor):
    """sst2's input checks without a network: every valid row is 'positive'."""

    def __init__(self) -> None:
        from pipeline.kinds.factory import build_kind

        self.cfg = load_params().task("sst2")
        self.kind = build_kind(self.cfg)

    def predict(self, rows):
        return [{"label": "positive", "confidence": 0.9} for _ in self.records(rows)]


class StandInTaskModel(TaskModel):
    """The served model's class with the checking predictor in place of a trained bundle."""

    def load_context(self, context) -> None:
        self._predictor = CheckingPredictor()


@pytest.mark.unit
def test_the_pyfunc_model_rejects_bad_rows_as_invalid_parameter_values() -> None:
    import pandas as pd
    from mlflow.exceptions import MlflowException

    model = StandInTaskModel()
    model.load_context(None)
    assert model.predict(None, pd.DataFrame({"text": ["a film"]})) == [{"label": "positive", "confidence": 0.9}]
    cases = {
        "row 0: field 'text' must be a string, got int 5": pd.DataFrame({"text": [5]}, dtype=object),
        "row 1: field 'text' is empty (got '  ')": pd.DataFrame({"text": ["a film", "  "]}),
        "row 1: field 'text' is missing (this task needs 'text')": [{"text": "a film"}, {"txt": "b"}],
        "row 0: field 'text' is missing (this task needs 'text')": pd.DataFrame({"text": [None]}),
    }
    for message, rows in cases.items():
        with pytest.raises(MlflowException) as error:
            model.predict(None, rows)
        assert error.value.message == message
        assert error.value.error_code == "INVALID_PARAMETER_VALUE" and error.value.get_http_status_code() == 400
        assert "stack_trace" not in json.loads(error.value.serialize_as_json())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.e2e
def test_the_scoring_server_answers_a_bad_row_with_400_and_the_row_and_field(tmp_path: Path) -> None:
    import mlflow.pyfunc
    import pandas as pd
    import uvicorn
    from mlflow.models import infer_signature
    from mlflow.pyfunc import scoring_server

    example = pd.DataFrame({"text": ["a gripping film"]})
    mlflow.pyfunc.save_model(
        str(tmp_path / "model"), python_model=StandInTaskModel(), input_example=example,
        signature=infer_signature(example, [{"label": "positive", "confidence": 0.9}]),
    )
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(scoring_server.init(model), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def post(body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        deadline = time.time() + 60
        while not server.started:
            assert thread.is_alive() and time.time() < deadline, "the scoring server did not start"
            time.sleep(0.1)
        assert post({"dataframe_records": [{"text": "a gripping film"}]}) == (
            200, {"predictions": [{"label": "positive", "confidence": 0.9}]}
        )
        for body, message, field in (
            ({"dataframe_records": [{"text": 5}]}, "row 0: field 'text' must be a string, got int 5", "text"),
            ({"dataframe_records": [{"text": "ok"}, {"text": ""}]}, "row 1: field 'text' is empty (got '')", "text"),
            ({"dataframe_records": [{"text": "ok"}, {"txt": "b"}]},
             "row 1: field 'text' is missing (this task needs 'text')", "text"),
            ({"dataframe_split": {"columns": ["text"], "data": [["ok"], [["a", "list"]]]}},
             "row 1: field 'text' must be a string, got list ['a', 'list']", "text"),
        ):
            status, answer = post(body)
            assert status == 400, (body, answer)
            assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
            assert answer["message"] == message
            assert (answer["row"], answer["field"]) == (int(message.split()[1].rstrip(":")), field)
            assert "stack_trace" not in answer and "Traceback" not in json.dumps(answer)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# --- 5. an absolute data.dir: rejected by the config, with the line and a relative form -----------


@pytest.mark.unit
def test_an_absolute_data_dir_is_rejected_with_line_and_a_relative_form(tmp_path: Path, capsys) -> None:
    from pipeline.commands import check

    data_root = (DEFAULT_PARAMS.parent / "../shared/data").resolve()
    path = edited(tmp_path, "      dir: en/sst2\n", f"      dir: {data_root / 'en/sst2'}\n")
    line = line_of(path, f"dir: {data_root / 'en/sst2'}")
    expected = (
        f"{path}:{line}: tasks.sst2.data.dir: must be relative to data_root (got '{data_root / 'en/sst2'}'); "
        f"hint: write it relative to data_root ({data_root}): 'dir: en/sst2'"
    )
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value) == expected
    assert check.main(["--params", str(path)]) == 2  # was: OK, then DVC failed on ${data_root}/${dir}
    assert f"error: {expected}\n" in capsys.readouterr().err
    elsewhere = edited(tmp_path, "      dir: en/sst2\n", "      dir: /srv/corpora/sst2\n")
    with pytest.raises(ConfigError, match=re.escape(
        "hint: set data_root to a folder above it, e.g. 'data_root: /srv/corpora' with 'dir: sst2'"
    )):
        load_params(elsewhere)


@pytest.mark.unit
def test_an_absolute_data_root_with_relative_dirs_still_loads(tmp_path: Path) -> None:
    data_root = (DEFAULT_PARAMS.parent / "../shared/data").resolve()
    params = load_params(edited(tmp_path, "data_root: ../shared/data", f"data_root: {data_root}"))
    assert params.data_dir("sst2") == data_root / "en" / "sst2"
