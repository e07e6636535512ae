"""``backbone.json``: what the backbone stage leaves for training to load.

Every preset ends as a directory ``models/backbones/<name>/`` holding ``backbone.json``::

    {"model_type": "bert", "config": "bert_config.json", "checkpoint": "bert_model.ckpt",
     "vocab": "vocab.txt", "lowercase": true, "preset": "minilm-en"}

Relative paths are relative to that directory; a ``path`` preset records absolute paths
to the user's own files instead of copying gigabytes into the DVC cache.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST = "backbone.json"


@dataclass(frozen=True)
class BackboneFiles:
    """Resolved locations of a backbone's files, ready for ``build_transformer_model``."""

    model_type: str
    config: Path
    checkpoint: Path
    vocab: Path
    lowercase: bool
    preset: str


def write_manifest(directory: Path, files: BackboneFiles) -> Path:
    """Write ``backbone.json`` into ``directory``, storing paths relative to it where possible."""

    def rel(path: Path) -> str:
        try:
            return str(Path(path).resolve().relative_to(directory.resolve()))
        except ValueError:
            return str(Path(path).resolve())

    data = asdict(files)
    for key in ("config", "checkpoint", "vocab"):
        data[key] = rel(data[key])
    path = directory / MANIFEST
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def weight_files(files: BackboneFiles) -> list[Path]:
    """The checkpoint's own files (``<prefix>.index`` and ``<prefix>.data-*``), sorted: what a fingerprint of
    the backbone's weights hashes (two backbones may share config, vocabulary and manifest)."""
    prefix = Path(files.checkpoint)
    return sorted(path for path in prefix.parent.glob(f"{prefix.name}.*")
                  if path.name.endswith(".index") or ".data-" in path.name)


def read_manifest(directory: str | Path) -> BackboneFiles:
    """Read ``backbone.json`` of a backbone directory; paths come back absolute."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no backbone manifest; run the backbone stage (dvc repro backbone)")
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("config", "checkpoint", "vocab"):
        data[key] = (directory / data[key]).resolve()
    return BackboneFiles(**data)
