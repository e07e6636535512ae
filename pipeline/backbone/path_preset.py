"""The ``path`` preset: a user's own backbone in Google's layout, referenced in place (never copied).

Only ``backbone.json`` is written, holding absolute paths to the user's ``bert_config.json``,
checkpoint and ``vocab.txt``, so gigabytes of weights stay out of the DVC cache.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pipeline.backbone.checkpoint import staged_dir
from pipeline.backbone.manifest import BackboneFiles, read_manifest, write_manifest
from pipeline.config.paths import PROJECT_ROOT
from pipeline.config.schema import PathBackbone

logger = logging.getLogger(__name__)

CONFIG, VOCAB = "bert_config.json", "vocab.txt"

#: a vocabulary is taken as cased when more than this share of its ordinary tokens has capitals
CASED_SHARE = 0.01
_SPECIAL = re.compile(r"^\[[^\]]*\]$|^<[^>]*>$")  # [CLS], [unused3], <S>, <T>


def link_path_backbone(
    out_dir: Path, cfg: PathBackbone, name: str | None = None, root: Path = PROJECT_ROOT
) -> BackboneFiles:
    """Validate ``cfg.path`` and write a manifest in ``out_dir`` pointing at its files.

    ``name`` (for error messages) defaults to ``out_dir``'s name; a relative ``cfg.path`` is
    taken relative to ``root`` (the project root, where params.yaml lives).
    """
    out_dir = Path(out_dir)
    name = name or out_dir.name
    source = (root / cfg.path).resolve()
    checkpoint = source / cfg.checkpoint
    _require_files(source, [CONFIG, f"{cfg.checkpoint}.index", VOCAB], f"backbones.{name}.path")
    lowercase = not vocab_looks_cased(source / VOCAB)
    files = BackboneFiles(cfg.model_type, source / CONFIG, checkpoint, source / VOCAB, lowercase, cfg.preset)
    with staged_dir(out_dir) as stage:
        write_manifest(stage, files)
    logger.info(f"[backbone] {name}: {cfg.model_type} at {source} (lowercase={lowercase})")
    return read_manifest(out_dir)


def _require_files(directory: Path, names: list[str], key: str) -> None:
    """Raise FileNotFoundError naming the params key and every missing file of ``directory``."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{key}: {directory} is not a directory")
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{key}: {directory} lacks {', '.join(missing)} "
            f"(expected Google's layout: {', '.join(names)} and the checkpoint's .data files)"
        )


def vocab_looks_cased(path: Path) -> bool:
    """Whether a ``vocab.txt`` belongs to a cased model.

    Uncased vocabularies were built from lower-cased text, so apart from special tokens such as
    ``[CLS]`` or ``<S>`` (and a stray few) no token changes under ``str.lower``; in a cased one
    thousands do (``The``, ``##A``...). More than :data:`CASED_SHARE` of tokens is taken as cased.
    """
    with open(path, encoding="utf-8") as handle:
        tokens = [token for token in (line.strip() for line in handle) if token and not _SPECIAL.match(token)]
    capitalised = sum(token != token.lower() for token in tokens)
    return bool(tokens) and capitalised / len(tokens) > CASED_SHARE
