"""``pretraining:`` entries: continued masked-LM training of a backbone on in-domain text (TF-free).

Each entry is a backbone of its own that tasks name like any under ``backbones:``::

    pretraining:
      minilm-zh-adapted:
        from: minilm-zh                   # a backbone (or another pretraining entry) to continue from
        language: zh
        corpus: {tasks: [zh_sentiment, tnews], files: [data/corpora/reviews.txt]}
        steps: 2000

The corpus is the *training* texts of ``corpus.tasks`` (never their dev or test texts) plus plain-text
files under ``data/corpora/`` (one document per line). :func:`pretraining_problems` lists what is wrong
across entries, each as ``(key path, message)``.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Literal, Mapping

from pydantic import Field

from pipeline.config.strict_model import StrictModel

#: the model types whose masked-LM head bert4keras builds as BERT's (``MLM-Dense``, ``MLM-Norm``, ``MLM-Bias``)
MLM_MODELS = ("bert", "roberta", "nezha")
#: where corpus files live (relative to the project root); the pretrain stage depends on this folder
CORPORA_DIR = "data/corpora"


class Corpus(StrictModel):
    """The unlabelled text: tasks' training texts and plain-text files (one document per line)."""

    tasks: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)


class Masking(StrictModel):
    """BERT's masking: ``rate`` of the tokens are chosen, 80% become [MASK], 10% a random token, 10% stay;
    ``whole_word`` chooses whole words (jieba's for Chinese, WordPiece words for English)."""

    rate: float = Field(default=0.15, gt=0, lt=1)
    whole_word: bool = False


class PretrainingConfig(StrictModel):
    """One continued-pretraining run; its output is the backbone ``models/backbones/<name>``."""

    source: str = Field(alias="from", min_length=1)
    language: Literal["zh", "en"]
    corpus: Corpus
    steps: int = Field(ge=1)
    batch_size: int = Field(default=32, ge=1)
    maxlen: int = Field(default=128, ge=8, le=512)
    learning_rate: float = Field(default=5e-5, gt=0)
    warmup_proportion: float = Field(default=0.06, ge=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0)
    masking: Masking = Field(default_factory=Masking)
    #: share of the corpus's documents kept out of training, for the held-out perplexity
    heldout_fraction: float = Field(default=0.02, gt=0, le=0.5)
    #: steps per block: one MLflow point, one checkpoint (resume) and one held-out evaluation each
    log_every: int = Field(default=100, ge=1)
    seed: int = 42
    precision: Literal["auto", "float32", "mixed_bfloat16"] = "auto"

    def dump(self) -> dict[str, Any]:
        """The entry as params.yaml writes it (``from``, not ``source``)."""
        return self.model_dump(by_alias=True)


def pretraining_problems(
    entries: Mapping[str, PretrainingConfig], backbones: Mapping[str, Any], task_languages: Mapping[str, str],
) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with ``pretraining:``: name clashes, unknown sources or tasks, a language that does
    not match a task's, corpus files outside ``data/corpora/``, loops of ``from``, an empty corpus."""
    problems: list[tuple[tuple[str, ...], str]] = []
    known = sorted({*backbones, *entries})
    for name, entry in entries.items():
        loc = ("pretraining", name)
        if name in backbones:
            problems.append((loc, f"{name!r} is also under 'backbones:'; hint: give the pretrained backbone its own name"))
        if entry.source not in backbones and entry.source not in entries:
            problems.append((loc + ("from",), f"unknown backbone {entry.source!r}; defined: {', '.join(known)}"))
        elif _loops(name, entries):
            problems.append((loc + ("from",), f"{name!r} continues from itself through 'from'"))
        elif (model_type := getattr(backbones[root_backbone(name, entries)], "model_type", "bert")) not in MLM_MODELS:
            problems.append((loc + ("from",), f"an {model_type} backbone has no BERT-style MLM head to continue; "
                                              f"hint: start from a {', '.join(MLM_MODELS)} backbone"))
        for index, task in enumerate(entry.corpus.tasks):
            if task not in task_languages:
                problems.append((loc + ("corpus", "tasks", str(index)),
                                 f"unknown task {task!r}; defined tasks: {', '.join(task_languages)}"))
            elif task_languages[task] != entry.language:
                problems.append((loc + ("corpus", "tasks", str(index)),
                                 f"task {task!r} is language {task_languages[task]!r}, the pretraining "
                                 f"{entry.language!r}; hint: one language per pretraining"))
        for index, file in enumerate(entry.corpus.files):
            path = PurePosixPath(file)
            if path.is_absolute() or ".." in path.parts or path.parts[:2] != tuple(CORPORA_DIR.split("/")) \
                    or len(path.parts) < 3:
                problems.append((loc + ("corpus", "files", str(index)),
                                 f"corpus files live under {CORPORA_DIR}/ (got {file!r}); hint: put the file "
                                 f"there, e.g. '{CORPORA_DIR}/{path.name}' (the pretrain stage depends on that folder)"))
        if not entry.corpus.tasks and not entry.corpus.files:
            problems.append((loc + ("corpus",), "names no text; hint: 'corpus: {tasks: [<task>, ...]}' "
                                                "and/or 'files: [data/corpora/<file>.txt]'"))
    return problems


def _loops(name: str, entries: Mapping[str, PretrainingConfig]) -> bool:
    seen, current = set(), name
    while current in entries:
        if current in seen:
            return True
        seen.add(current)
        current = entries[current].source
    return False


def root_backbone(name: str, entries: Mapping[str, PretrainingConfig]) -> str:
    """The ``backbones:`` entry a (chain of) pretraining entries starts from."""
    seen = set()
    while name in entries and name not in seen:
        seen.add(name)
        name = entries[name].source
    return name
