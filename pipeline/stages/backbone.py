"""Backbone stage: make ``models/backbones/<name>/`` (with ``backbone.json``) from a params preset.

``python -m pipeline.stages.backbone <name> [--params params.yaml]``; the preset of
``backbones.<name>`` selects the builder in :data:`BUILDERS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.backbone.manifest import BackboneFiles
from pipeline.backbone.minilm import convert_minilm_en, convert_minilm_zh
from pipeline.backbone.path_preset import link_path_backbone
from pipeline.config.paths import PROJECT_ROOT
from pipeline.config.schema import MiniLMEnBackbone, MiniLMZhBackbone, Params, PathBackbone
from pipeline.config.paths import backbone_dir


def _minilm_en(cfg: MiniLMEnBackbone, name: str, out_dir: Path) -> BackboneFiles:
    return convert_minilm_en(out_dir)


def _minilm_zh(cfg: MiniLMZhBackbone, name: str, out_dir: Path) -> BackboneFiles:
    vocab = (PROJECT_ROOT / cfg.vocab).resolve()
    if not vocab.is_file():
        raise FileNotFoundError(f"backbones.{name}.vocab: {vocab} not found")
    return convert_minilm_zh(out_dir, vocab, cfg.embedding_init, cfg.seed)


def _path(cfg: PathBackbone, name: str, out_dir: Path) -> BackboneFiles:
    return link_path_backbone(out_dir, cfg, name)


#: preset -> builder(cfg, backbone name, output directory)
BUILDERS: dict[str, Callable[..., BackboneFiles]] = {
    "minilm-en": _minilm_en,
    "minilm-zh": _minilm_zh,
    "path": _path,
}


def build_backbone(params: Params, name: str) -> BackboneFiles:
    """Build backbone ``name`` of ``params`` into :func:`pipeline.config.paths.backbone_dir`."""
    cfg = params.backbone(name)
    return BUILDERS[cfg.preset](cfg, name, backbone_dir(name))


if __name__ == "__main__":
    from pipeline.stages.cli import run_stage

    run_stage("Convert or link a pretrained backbone for bert4keras.", "backbone", build_backbone)
