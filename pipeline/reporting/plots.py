"""Plots written next to the metrics: PNGs that render offline (matplotlib's Agg backend)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

logger = logging.getLogger(__name__)
# wqy-zenhei's one weight is "medium": matplotlib says so on every plot that uses it
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

#: fonts with Chinese glyphs, by the file a Debian package installs (``make fonts``: fonts-wqy-zenhei)
#: or by name; the first found follows matplotlib's default in the fallback list of every plot
CJK_FONT_FILES = ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
CJK_FONT_NAMES = ("WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "SimHei")


def use_cjk_font() -> str | None:
    """Let every plot draw Chinese labels: add the first CJK font found to matplotlib's fallback list
    (matplotlib picks a font per glyph along it); its name, or None with one warning when there is none."""
    for path in CJK_FONT_FILES:
        if os.path.isfile(path):
            font_manager.fontManager.addfont(path)
    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FONT_NAMES if name in installed), None)
    if found is None:
        logger.warning("warning: no font with Chinese glyphs found: Chinese labels in plots show as boxes; "
                       "hint: `make fonts` installs one (Debian package fonts-wqy-zenhei)")
        return None
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", found]  # a list of families: a fallback per glyph
    return found


CJK_FONT = use_cjk_font()


def plot_confusion(matrix: Sequence[Sequence[int]], labels: list[str], path: Path, title: str) -> Path:
    """A confusion-matrix heat map with counts in the cells (rows: gold, columns: predicted)."""
    size = max(4.0, 0.55 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if peak and count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)


def plot_history(history: list[dict], path: Path, title: str) -> Path:
    """Training loss and dev metrics per epoch, side by side."""
    epochs = [row["epoch"] for row in history]
    metric_keys = [key for key in history[0] if key.startswith("dev_")] if history else []
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["loss"] for row in history], marker="o")
    left.set_title("training loss")
    left.set_xlabel("epoch")
    for key in metric_keys:
        right.plot(epochs, [row[key] for row in history], marker="o", label=key.removeprefix("dev_"))
    right.set_title("dev metrics")
    right.set_xlabel("epoch")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(path: Path, title: str, xlabel: str, panels: dict[str, dict[str, tuple[list, list]]]) -> Path:
    """One panel per entry of ``panels`` (its title), each with a line per named ``(x, y)`` series."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (panel, series) in zip(axes[0], panels.items()):
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_bars(values: dict[str, float], path: Path, title: str, xlabel: str) -> Path:
    """A horizontal bar per key (e.g. F1 per entity type or per predicate), value printed at the bar."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(names) + 1.2)))
    bars = ax.barh(range(len(names)), [values[name] for name in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, *values.values()) if values else 1.0)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
