"""Validation errors as one line each: ``file:line: key.path: reason; hint: ...``, in file order."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pipeline.config.errors import did_you_mean, shown_path
from pipeline.config.schema import INHERITED, MERGED_PER_KEY, Params
from pipeline.config.yaml_source import locate, origin
from pipeline.data.readers import READERS
from pipeline.kinds import REGISTRY


def describe_errors(errors: list[dict], raw: dict, path: Path) -> list[str]:
    """One line per problem, in file order: ``file:line: dotted.key.path: message[; hint: ...]``.

    A value a task inherits from ``defaults:`` is reported at its line there, once: the error the
    ``defaults`` block raises itself stands for the same error of every task inheriting the value,
    and an error only a task's kind raises (a ``head`` option) names the tasks it concerns."""
    expanded = [
        {**error, "loc": _without_union_tags([str(part) for part in error["loc"]])} for error in _expand(errors)
    ]
    for error in expanded:
        error["source"] = origin(raw, error["loc"], INHERITED, MERGED_PER_KEY)
    own = {(tuple(e["loc"]), e["type"]) for e in expanded if e["loc"][:1] == ["defaults"]}
    expanded = [e for e in expanded if e["source"] == e["loc"] or (tuple(e["source"]), e["type"]) not in own]
    if raw.get("defaults") is not None and not isinstance(raw["defaults"], dict):
        # defaults that are not a mapping reach no task: what the tasks then miss follows from that one line
        expanded = [e for e in expanded if not (e["type"] == "missing" and _inheritable(e["loc"]))]
    # a misspelt required key is one problem: the unknown key names it, its 'missing' error is dropped
    missing = {tuple(e["loc"]) for e in expanded if e["type"] == "missing"}
    absorbed: set[tuple[str, ...]] = set()
    suggestions: dict[int, str] = {}
    for index, error in enumerate(expanded):
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(raw, error["loc"])
            close = difflib.get_close_matches(error["loc"][-1], allowed, n=1)
            if close:
                suggestions[index] = close[0]
                if error["loc"][:1] == ["defaults"] and len(error["loc"]) == 2:
                    # misspelt in defaults: the tasks that do not set the key themselves miss it
                    targets = {loc for loc in missing if len(loc) == 3 and loc[0] == "tasks" and loc[2] == close[0]}
                else:
                    targets = {(*error["loc"][:-1], close[0])} & missing
                if targets:
                    absorbed |= targets
                    suggestions[index] += "!"
    # the same problem at the same line once, naming the tasks that inherit it from defaults
    problems: dict[tuple[int, str], tuple[int, list[str]]] = {}
    for index, error in enumerate(expanded):
        if error["type"] == "missing" and tuple(error["loc"]) in absorbed:
            continue
        line, text = _describe(error, raw, path, suggestions.get(index))
        _, heirs = problems.setdefault((line, text), (index, []))
        if error["source"] != error["loc"]:
            heirs.append(f"tasks.{error['loc'][1]}")
    lines = [(line, index, _inherited_by(text, heirs)) for (line, text), (index, heirs) in problems.items()]
    return [text for _, _, text in sorted(lines)]


def _inheritable(loc: list[str]) -> bool:
    """Whether ``loc`` is a task's key that ``defaults:`` may give (``tasks.<name>.<hyper-parameter>``)."""
    return len(loc) == 3 and loc[0] == "tasks" and loc[2] in INHERITED


def _inherited_by(text: str, heirs: list[str]) -> str:
    """``text`` naming the tasks that inherit the bad value, before its hint."""
    if not heirs:
        return text
    reason, separator, hint = text.partition("; hint: ")
    return f"{reason} (inherited by {', '.join(heirs)}){separator}{hint}"


def _expand(errors: list[dict]) -> list[dict]:
    """Errors raised with :func:`located` replaced by their sub-errors, at their full key paths."""
    out = []
    for error in errors:
        if error["type"] == "located" and error.get("ctx", {}).get("errors"):
            out.extend({**sub, "loc": (*error["loc"], *sub["loc"])} for sub in _expand(error["ctx"]["errors"]))
        else:
            out.append(error)
    return out


def _describe(error: dict, raw: dict, path: Path, suggestion: str | None = None) -> tuple[int, str]:
    """(line, ``file:line: dotted.key.path: message[; hint: ...]``) for one validation error, at the
    line of ``error["source"]`` (where in ``defaults`` an inherited value was written) when given."""
    loc = list(error["loc"])
    source = list(error.get("source") or loc)
    inherited = source != loc
    kind = error["type"]
    message = error["msg"]
    hint = ""
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = error.get("ctx", {}).get("discriminator", "").strip("'") or "format"
        loc.append(field)
        known = _union_tags(loc)
        what = "format" if field == "format" else field
        if kind == "union_tag_invalid":
            tag = error["ctx"]["tag"]
            message = f"unknown {what} {tag!r}; known: {', '.join(known)}"
            hint = did_you_mean(tag, known)
        else:
            message = f"required key is missing; known {what}s: {', '.join(known)}"
            hint = f"add '{field}: <one of them>'"
    elif kind == "extra_forbidden":
        message = "unknown key"
        if inherited:
            hint = f"set it in the '{source[1]}:' of the tasks whose kind takes it, not in defaults"
        elif suggestion and suggestion.endswith("!") and loc[:1] == ["defaults"]:
            hint = f"did you mean {suggestion[:-1]!r}? (a required key: the tasks that do not set it miss it)"
        elif suggestion and suggestion.endswith("!"):
            hint = f"did you mean {suggestion[:-1]!r}? (a required key, missing here)"
        elif suggestion:
            hint = f"did you mean {suggestion!r}?"
        else:
            allowed = _allowed_keys(raw, loc)
            hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
    elif kind == "missing":
        message = "required key is missing"
        hint = f"add '{loc[-1]}: {_example(loc[-1], 'missing', None)}'"
        if _inheritable(loc):
            hint += " here, or once under 'defaults:' for every task"
    else:
        value = error.get("input")
        if "input" in error and not isinstance(value, dict) and not (isinstance(value, list) and len(repr(value)) > 60):
            if f"{value!r}" not in message:
                message += f" (got {value!r})"
        hint = _type_hint(kind, loc[-1] if loc else "", value, error.get("ctx", {}))
    where = source if inherited else loc
    line, _ = locate(raw, where)
    key = ".".join(where) or "(top level)"
    if hint and "; hint: " not in message:
        message += f"; hint: {hint}"
    return line, f"{shown_path(path)}:{line}: {key}: {message}"


#: example values for hints, by key name
_EXAMPLES = {
    "epochs": "3", "batch_size": "32", "maxlen": "128", "seed": "42", "learning_rate": "5.0e-5",
    "warmup_proportion": "0.1", "weight_decay": "0.01", "dropout": "0.1", "max_train_samples": "1000",
    "max_dev_samples": "1000", "max_test_samples": "1000", "dev_fraction": "0.05", "test_fraction": "0.0",
    "token_column": "0", "tag_column": "-1", "header": "false", "delimiter": '"\\t"', "columns": "[label, text]",
    "label_names": '{"0": negative, "1": positive}', "template": '["{query}", "{text}"]', "no_answer": "[NaN]",
    "kind": "text_classification", "language": "en", "backbone": "minilm-en", "precision": "float32",
    "dir": "en/sst2", "train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", "data_root": "../shared/data",
    "vocab": "../shared/models/chinese-vocab/vocab.txt", "path": "/models/chinese_L-12_H-768_A-12",
    "model_type": "bert", "embedding_init": "overlap", "checkpoint": "bert_model.ckpt",
    "uri": "sqlite:///mlflow.db", "experiment": "bert4keras-pipeline",
    "encoding": "latin-1", "join": '""', "quoting": "true", "quotechar": "'\"'", "escapechar": '"\\\\"',
    "doublequote": "true", "label_names_file": "class.txt", "max_space_share": "0.33",
    "allow_suspicious_labels": "true",
}


def _head_option_default(key: str) -> str | None:
    """The default of a head option called ``key`` in any registered kind's ``Options`` (as YAML text)."""
    for spec in REGISTRY.values():
        field = spec.options_model().model_fields.get(key)
        if field is not None and field.default is not None:
            return str(field.default).lower() if isinstance(field.default, bool) else str(field.default)
    return None


_TYPE_NAMES = {
    "int": ("a whole number", "1"),
    "float": ("a number", "0.5"),
    "string": ("text", '"text"'),
    "bool": ("true or false (YAML 1.2: yes/no/on/off are text)", "false"),
    "list": ("a list", "[a, b]"),
    "dict": ("a block of 'key: value' lines", "{key: value}"),
    "model": ("a block of 'key: value' lines", "{key: value}"),
}


def _example(key: str, kind: str, value: Any) -> str:
    if key in _EXAMPLES:
        return _EXAMPLES[key]
    if (default := _head_option_default(key)) is not None:
        return default
    family = kind.split("_")[0]
    return _TYPE_NAMES.get(family, ("", "..."))[1]


def _type_hint(kind: str, key: str, value: Any, ctx: dict) -> str:
    """A short fix for a wrong value: what is expected and an example."""
    family = kind.split("_")[0]
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return did_you_mean(value, choices) if isinstance(value, str) else ""
    if family not in _TYPE_NAMES or kind.startswith(("string_too", "list_too")):
        return ""
    if family in ("int", "float") and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and (family == "float" or number.is_integer()):
            return f"remove the quotes: '{key}: {value}'"
    if family == "string" and isinstance(value, (int, float, bool)) and key:
        shown = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
        return f"quote it to make it text: '{key}: \"{shown}\"'"
    what, _ = _TYPE_NAMES[family]
    example = _example(key, kind, value)
    return f"write {what}, e.g. '{key}: {example}'" if key else f"write {what}"


def _without_union_tags(loc: list[str]) -> list[str]:
    """Drop the discriminator values pydantic inserts into error paths.

    ``tasks.x.data.squad.dir`` -> ``tasks.x.data.dir``; ``backbones.b.path.path`` -> ``backbones.b.path``.
    """
    kept: list[str] = []
    for index, part in enumerate(loc):
        after_data = kept[-1:] == ["data"] and len(kept) == 3 and kept[0] == "tasks" and part in READERS
        after_backbone = len(kept) == 2 and kept[0] == "backbones" and index == 2 and part in _PRESETS
        if not (after_data or after_backbone):
            kept.append(part)
    return kept


_PRESETS = {"minilm-en", "minilm-zh", "path"}


def _union_tags(loc: list[str]) -> list[str]:
    """The values a discriminator key at ``loc`` accepts (data formats or backbone presets)."""
    if loc[:1] == ["backbones"]:
        return ["minilm-en", "minilm-zh", "path"]
    return list(READERS)


def _allowed_keys(raw: dict, loc: list[str]) -> list[str]:
    """Field names valid in the mapping holding the last key of ``loc``, found by walking the model
    tree alongside the YAML (a data block's ``format`` or a backbone's ``preset`` picks its model)."""
    annotation: Any = Params
    node: Any = raw
    for key in loc[:-1]:
        model = _pick_model(annotation, node)
        fields = getattr(model, "model_fields", None)
        if fields is not None:
            if key not in fields:
                return []
            annotation = fields[key].annotation
        elif get_origin(model) is dict:
            annotation = get_args(model)[1]
        else:
            return []
        node = node.get(key) if isinstance(node, dict) else None
    model = _pick_model(annotation, node)
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _pick_model(annotation: Any, node: Any) -> Any:
    """The model (or ``dict[...]`` type) an annotation means for the YAML ``node`` it validates."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if hasattr(annotation, "model_fields") or get_origin(annotation) is dict:
        return annotation
    models = [arg for arg in get_args(annotation) if hasattr(arg, "model_fields") or get_origin(arg) is dict]
    for model in models:
        for field in ("format", "preset"):
            info = getattr(model, "model_fields", {}).get(field)
            if info is not None and isinstance(node, dict) and node.get(field) in get_args(info.annotation):
                return model
    return models[0] if models else None
