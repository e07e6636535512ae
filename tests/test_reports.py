"""Reports people look at: worst mistakes per kind, their markdown, the results summary, token saliency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.loading import load_params
from pipeline.kinds.factory import build_kind, new_kind
from pipeline.reporting.files import markdown_table
from pipeline.reporting.mistakes import mistakes_markdown, write_mistakes

# --- worst mistakes per kind --------------------------------------------------------------------------


@pytest.mark.unit
def test_classification_mistakes_are_wrong_predictions_most_confident_first() -> None:
    kind = new_kind("pair_classification")
    records = [
        {"id": "a", "text": "x1", "text_b": "y1", "label": "same"},
        {"id": "b", "text": "x2", "text_b": "y2", "label": "different"},
        {"id": "c", "text": "x3", "text_b": "y3", "label": "same"},
        {"id": "d", "text": "x4", "text_b": "y4", "label": "different"},
    ]
    predictions = [
        {"label": "different", "confidence": 0.61},
        {"label": "different", "confidence": 0.99},  # right: left out
        {"label": "different", "confidence": 0.98},
        {"label": "same", "confidence": 0.75},
    ]
    rows = kind.mistakes(records, predictions, ["different", "same"])
    assert [row["id"] for row in rows] == ["c", "d", "a"]
    assert rows[0] == {
        "id": "c", "text": "x3", "text_b": "y3", "gold": "same", "predicted": "different",
        "why": "confident and wrong: 0.98",
    }  # fmt: skip
    assert rows[1]["why"] == "wrong at confidence 0.75"
    assert [row["id"] for row in kind.mistakes(records, predictions, ["different", "same"], limit=1)] == ["c"]


def _entities(text: str, *mentions: tuple[str, str]) -> list[dict]:
    """Canonical entities of ``(mention, type)`` pairs, each at its first occurrence in ``text``."""
    found = []
    for mention, type_ in mentions:
        start = text.index(mention)
        found.append({"start": start, "end": start + len(mention), "type": type_, "text": mention})
    return found


@pytest.mark.unit
def test_sequence_labeling_mistakes_rank_texts_by_missed_plus_spurious_entities() -> None:
    kind = new_kind("sequence_labeling")
    gold = {
        "perfect": ("张三在北京", [("张三", "PER"), ("北京", "LOC")]),
        "two": ("李四住上海", [("李四", "PER")]),
        "three": ("王五去了广州", [("王五", "PER"), ("广州", "LOC")]),
        "one": ("赵六", []),
    }
    predicted = [
        [("张三", "PER"), ("北京", "LOC")],
        [("李四", "LOC")],  # wrong type: 1 missed + 1 spurious
        [("王", "PER")],  # 2 missed + 1 spurious
        [("赵六", "PER")],  # 1 spurious
    ]
    records = [{"id": key, "text": text, "entities": _entities(text, *m)} for key, (text, m) in gold.items()]
    predictions = [{"entities": _entities(r["text"], *m)} for r, m in zip(records, predicted)]
    rows = kind.mistakes(records, predictions, [])
    assert [row["id"] for row in rows] == ["three", "two", "one"]
    assert rows[0]["why"] == "2 missed, 1 spurious entities: missed 王五 (PER), 广州 (LOC); spurious 王 (PER)"
    assert rows[0]["gold"] == ["王五 (PER)", "广州 (LOC)"] and rows[0]["predicted"] == ["王 (PER)"]
    assert rows[0]["text"] == "王五去了广州" and "text_b" not in rows[0]
    assert rows[2]["why"] == "0 missed, 1 spurious entities: spurious 赵六 (PER)"
    assert [row["id"] for row in kind.mistakes(records, predictions, [], limit=2)] == ["three", "two"]


def _triple(text: str, subject: str, predicate: str, obj: str) -> dict:
    """A canonical triple, subject and object at their first occurrence in ``text``."""
    (s, o) = (text.index(subject), text.index(obj))
    return {
        "subject": {"start": s, "end": s + len(subject), "text": subject},
        "predicate": predicate,
        "object": {"start": o, "end": o + len(obj), "text": obj},
    }


@pytest.mark.unit
def test_relation_mistakes_rank_texts_by_triple_errors_matched_by_text() -> None:
    kind = new_kind("relation_extraction")
    a, b, c = "张三写了春天和夏天", "李四唱秋天", "王五唱冬天"
    records = [
        {"id": "a", "text": b, "triples": [_triple(b, "秋天", "歌手", "李四")]},
        {"id": "b", "text": a, "triples": [_triple(a, "春天", "作者", "张三"), _triple(a, "夏天", "作者", "张三")]},
        {"id": "c", "text": c, "triples": [_triple(c, "冬天", "歌手", "王五")]},
    ]
    predictions = [
        {"triples": []},  # 1 missed
        {"triples": [_triple(a, "春天", "歌手", "张三")]},  # 2 missed, 1 spurious
        {"triples": [_triple(c, "冬天", "歌手", "王五")]},  # right
    ]
    rows = kind.mistakes(records, predictions, [])
    assert [row["id"] for row in rows] == ["b", "a"]
    assert rows[0]["why"] == (
        "2 missed, 1 spurious triples: missed (春天, 作者, 张三), (夏天, 作者, 张三); spurious (春天, 歌手, 张三)"
    )
    assert rows[1]["why"] == "1 missed, 0 spurious triples: missed (秋天, 歌手, 李四)" and rows[1]["predicted"] == []
    # the same subject and object texts at other offsets match: triples are scored by text
    moved = {**records[2]["triples"][0], "subject": {"start": 0, "end": 2, "text": "冬天"}}
    assert kind.mistakes(records[2:], [{"triples": [moved]}], []) == []


@pytest.mark.unit
def test_span_mistakes_lowest_f1_first_exact_matches_left_out() -> None:
    kind = new_kind("span_extraction")
    records = [
        {"id": "exact", "query": "q", "text": "abc def ghi", "answers": [{"start": 0, "end": 3, "text": "abc"}]},
        {"id": "half", "query": "q", "text": "abc def ghi", "answers": [{"start": 0, "end": 7, "text": "abc def"}]},
        {"id": "none", "query": "q", "text": "abc def ghi", "answers": [{"start": 8, "end": 11, "text": "ghi"}]},
        {"id": "unanswerable", "query": "q2", "text": "xyz", "answers": []},
    ]
    predictions = [{"text": "abc"}, {"text": "abc"}, {"text": ""}, {"text": "xyz"}]
    rows = kind.mistakes(records, predictions, [])
    assert [row["id"] for row in rows] == ["none", "unanswerable", "half"]
    assert rows[0] == {
        "id": "none", "query": "q", "text": "abc def ghi", "gold": ["ghi"], "predicted": "",
        "why": "F1 0.00, no answer predicted",
    }  # fmt: skip
    assert rows[1]["why"] == "F1 0.00, the query has no answer"
    assert rows[2]["why"] == "F1 0.67"


# --- markdown ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_mistakes_are_written_as_json_lines_and_readable_markdown(tmp_path: Path) -> None:
    rows = [
        {"id": "t-1", "text": "a <script>x</script> | *b* _c_\nnext", "gold": ["A (PER)"], "predicted": [],
         "why": "1 missed, 0 spurious entities: missed A (PER)"},
        {"id": "t-2", "query": "who?", "text": "y" * 700, "gold": [], "predicted": "", "why": "F1 0.00"},
    ]  # fmt: skip
    jsonl, md = write_mistakes(rows, tmp_path / "evaluation", "demo: worst test mistakes")
    assert (jsonl.name, md.name) == ("worst_mistakes.jsonl", "worst_mistakes.md")
    assert [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()] == rows
    text = md.read_text(encoding="utf-8")
    assert text == mistakes_markdown(rows, "demo: worst test mistakes")
    assert text.startswith("# demo: worst test mistakes\n")
    assert "## 1. t-1: 1 missed, 0 spurious entities: missed A (PER)" in text
    assert "- **text**: a &lt;script&gt;x&lt;/script&gt; \\| \\*b\\* \\_c\\_ next" in text  # one line, inert
    assert "<script>" not in text
    assert "- **gold**: A (PER)\n- **predicted**: (none)" in text
    second = text.split("## 2. ")[1]
    assert second.index("**query**: who?") < second.index("**text**")
    assert "y" * 600 + "…" in second and "y" * 601 not in second
    assert "- **gold**: (none)\n- **predicted**: (empty)" in second
    assert "No mistakes." in mistakes_markdown([], "t")


@pytest.mark.unit
def test_markdown_table_escapes_pipes_and_newlines() -> None:
    assert markdown_table(["a", "b"], [["x|y", "1\n2"], [0.5, ""]]) == (
        "| a | b |\n|---|---|\n| x\\|y | 1 2 |\n| 0.5 |  |\n"
    )


# --- summary ----------------------------------------------------------------------------------------


def _row(text: str, task: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| `{task}` |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _fake_runs(uri: str, experiment: str, tmp_path: Path) -> dict[str, str]:
    """Runs as the pipeline logs them: two evaluated sst2 runs, one sst2 run that never got test
    metrics, and a better-scoring run of another task."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(experiment, artifact_location=(tmp_path / "mlartifacts").as_uri())
    ids = {}
    for name, task, accuracy in [("sst2-c", "sst2", None), ("sst2-a", "sst2", 0.81), ("sst2-b", "sst2", 0.87),
                                 ("other", "zh_sentiment", 0.99)]:  # fmt: skip
        run = client.create_run(experiment_id, run_name=name, tags={"task": task})
        if accuracy is not None:
            client.log_metric(run.info.run_id, "test.accuracy", accuracy)
        client.log_metric(run.info.run_id, "dev_accuracy", 0.95, step=1)
        client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    return ids


@pytest.mark.unit
def test_summary_shows_latest_metrics_and_best_mlflow_run(tmp_path: Path) -> None:
    from pipeline.commands.summary import NOT_RUN, write_summary

    params = load_params()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = _fake_runs(uri, params.tracking.experiment, tmp_path)
    project = tmp_path / "project"
    metrics = {"test": {"accuracy": 0.85, "macro_f1": 0.84}, "baseline": {"accuracy": 0.5, "macro_f1": 0.33}}
    (project / "reports" / "sst2").mkdir(parents=True)
    (project / "reports" / "sst2" / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")

    path, error = write_summary(params, project, uri=uri)
    assert error is None and path == project / "reports" / "summary.md"
    text = path.read_text(encoding="utf-8")
    assert _row(text, "sst2") == [
        "`sst2`", "text_classification", "accuracy", "0.8500", "0.5000", "0.8700", "sst2-b", f"`{ids['sst2-b']}`"
    ]  # fmt: skip
    assert _row(text, "zh_sentiment")[3:] == [NOT_RUN, "", "0.9900", "other", f"`{ids['other']}`"]
    assert _row(text, "tnews")[3:] == [NOT_RUN, "", "-", "", ""]
    assert _row(text, "cluener")[:3] == ["`cluener`", "sequence_labeling", "f1"]
    assert [line.split("|")[1].strip(" `") for line in text.splitlines() if line.startswith("| `")] == list(
        params.tasks
    )


@pytest.mark.unit
def test_summary_without_a_store_yet_creates_none(tmp_path: Path) -> None:
    from pipeline.commands.summary import write_summary

    path, error = write_summary(load_params(), tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert error is None and not (tmp_path / "mlflow.db").exists()
    assert _row(path.read_text(encoding="utf-8"), "sst2")[5] == "-"


@pytest.mark.unit
def test_summary_reports_an_unreachable_store_in_one_line_and_still_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.commands.summary import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params.yaml").write_text(DEFAULT_PARAMS.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 100)  # the params' relative sqlite store
    (tmp_path / "reports" / "sst2").mkdir(parents=True)
    (tmp_path / "reports" / "sst2" / "metrics.json").write_text(
        json.dumps({"test": {"accuracy": 0.9}, "baseline": {"accuracy": 0.4}}), encoding="utf-8"
    )
    assert main(["--params", str(tmp_path / "params.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: MLflow tracking store sqlite:///") and "Traceback" not in err
    text = (tmp_path / "reports" / "summary.md").read_text(encoding="utf-8")
    assert _row(text, "sst2")[3:6] == ["0.9000", "0.4000", "unavailable"]
    assert "unreachable" in text


# --- saliency ---------------------------------------------------------------------------------------

SALIENCY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]", *"好坏很不电影<>&的看"]


@pytest.fixture(scope="module")
def tiny_classifier(module_tmp: Path):
    """A text classifier on a tiny random BERT, its tokenizer and labels."""
    from pipeline.training.modeling import build_task_model
    from pipeline.runtime.tf_runtime import set_seed
    from pipeline.text.tokenization import build_tokenizer
    from tests.tiny_project import make_tiny_backbone

    base = module_tmp
    (base / "vocab.txt").write_text("\n".join(SALIENCY_VOCAB) + "\n", encoding="utf-8")
    backbone = make_tiny_backbone(base / "tiny", base / "vocab.txt")
    cfg = load_params().task("zh_sentiment")
    labels = ["negative", "positive"]
    set_seed(3)
    kind = build_kind(cfg)
    model = build_task_model(kind, backbone / "bert_config.json", backbone / "bert_model.ckpt", "bert", labels, cfg)
    return model, build_tokenizer("zh", backbone / "vocab.txt", True), labels


@pytest.mark.model
def test_embedding_gradient_slices_are_per_position_gradients(tiny_classifier) -> None:
    """The IndexedSlices trick: a row of the slices is the gradient at that position (checked against a
    finite difference of the embedding row of a token that occurs once)."""
    from pipeline.kinds.common.saliency import TOKEN_EMBEDDING, gradient_saliency
    from pipeline.runtime.tf_runtime import tf

    model, tokenizer, _ = tiny_classifier
    encoding = tokenizer.encode("很好的电影不坏")
    ids, segments = np.array([encoding.token_ids], np.int32), np.zeros((1, len(encoding)), np.int32)
    position = 3  # "的": once in the input
    matrix = model.get_layer(TOKEN_EMBEDDING).embeddings
    with tf.GradientTape() as tape:
        p = model([ids, segments], training=False)[0, 1]
    grad = tape.gradient(p, matrix)
    assert isinstance(grad, tf.IndexedSlices) and grad.indices.numpy().tolist() == encoding.token_ids
    row = grad.values.numpy()[position]
    saliency = gradient_saliency(model, ids, segments, [1])
    np.testing.assert_allclose(saliency[0, position], np.linalg.norm(row), rtol=1e-5)

    eps, token = 1e-2, encoding.token_ids[position]
    original = matrix.numpy()
    try:
        matrix.assign(tf.tensor_scatter_nd_add(original, [[token]], [eps * row / np.linalg.norm(row)]))
        moved = float(model([ids, segments], training=False)[0, 1])
    finally:
        matrix.assign(original)
    assert float(p) != moved
    np.testing.assert_allclose(moved - float(p), eps * np.linalg.norm(row), rtol=0.05)


@pytest.mark.model
def test_saliency_scores_match_tokens_are_normalised_and_ignore_padding(tiny_classifier) -> None:
    from pipeline.kinds.common.saliency import explain

    model, tokenizer, _ = tiny_classifier
    records = [{"text": "很好"}, {"text": "电影不好看，很坏的电影"}, {"text": "好", "text_b": "不坏的"}]
    explained = explain(model, tokenizer, records, [1, 0, 1], maxlen=16)
    for record, saliency in zip(records, explained):
        encoding = saliency.encoding
        assert saliency.scores.shape == (len(encoding.tokens),) == (len(encoding.token_ids),)
        assert np.isfinite(saliency.scores).all() and saliency.scores.min() >= 0
        special = np.array([token in ("[CLS]", "[SEP]") for token in encoding.tokens])
        assert (saliency.scores[special] == 0).all()
        assert saliency.scores[~special].max() == pytest.approx(1.0) and (saliency.scores[~special] > 0).all()
    assert explained[2].encoding.tokens == ["[CLS]", "好", "[SEP]", "不", "坏", "的", "[SEP]"]
    # alone (no padding) or padded in a batch with a longer text: the same scores
    alone = explain(model, tokenizer, records[:1], [1], 16)[0]
    np.testing.assert_allclose(alone.scores, explained[0].scores, atol=1e-5)


@pytest.mark.model
def test_saliency_page_mixes_right_and_wrong_and_escapes_text(tiny_classifier, tmp_path: Path) -> None:
    from pipeline.kinds.common.saliency import pick_examples, write_saliency_page

    model, tokenizer, labels = tiny_classifier
    texts = ["<b>好</b> & 坏", "很好", "不好", "电影很好看", "坏的", "好的电影", "不坏"]
    records = [{"id": f"r{i}", "text": t, "label": labels[i % 2]} for i, t in enumerate(texts)]
    predictions = [
        {"label": labels[(i + (i < 3)) % 2], "confidence": c}  # r0..r2 wrong
        for i, c in enumerate([0.7, 0.95, 0.6, 0.8, 0.9, 0.55, 0.99])
    ]
    assert pick_examples(records, predictions, 4) == [1, 0, 3, 5]  # 2 wrong (most confident first), 2 right spread
    assert pick_examples(records, predictions, 7) == [1, 0, 2, 3, 4, 5, 6]
    assert pick_examples(records, predictions, 2) == [1, 3]

    path = write_saliency_page(model, tokenizer, records, predictions, labels, 16, tmp_path / "saliency.html", 4)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page  # self-contained
    assert page.count("class='ex wrong'") == 2 and page.count("class='ex right'") == 2
    for token in ("&lt;", "b", "&gt;", "好", "/", " ", "&amp;", "坏"):  # every character of r0 is a token
        assert f">{token}</span>" in page
    assert "<b>" not in page
    assert page.count("class='t'") == sum(len(records[i]["text"]) for i in (1, 0, 3, 5))  # one span per token
    assert "gold <strong>positive</strong> · predicted <strong>negative</strong> (0.95)" in page


@pytest.mark.unit
def test_plots_draw_chinese_labels_with_a_cjk_font(tmp_path: Path) -> None:
    import warnings

    from pipeline.reporting import plots

    assert plots.CJK_FONT is not None, "no CJK font: `make fonts` installs fonts-wqy-zenhei"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for every box it draws
        plots.plot_bars({"人物": 0.5, "地点": 0.7, "organisation": 0.6}, tmp_path / "f1.png", "每类 F1", "F1")
        plots.plot_confusion([[3, 1], [0, 4]], ["正面", "负面"], tmp_path / "confusion.png", "混淆矩阵")
    assert (tmp_path / "f1.png").stat().st_size > 5000
