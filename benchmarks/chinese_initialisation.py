"""How to start a Chinese model without Chinese pretrained weights: random vs overlap embeddings vs overlap
plus continued masked-LM pretraining on the Chinese tasks' training texts for 10 and 30 minutes.

    .venv/bin/python -m benchmarks.chinese_initialisation --project ../init   # runs what is missing
    .venv/bin/python -m benchmarks.chinese_initialisation --readme            # the README table
    .venv/bin/python -m benchmarks.chinese_initialisation --table             # per row: s/epoch, commands

Every row is one DVC experiment in ``--project`` (benchmarks/experiment_rows.py) with the same fine-tuning
budget (each task's own params): 3 seeds on zh_sentiment, cluener and ccks_event, one seed on tnews, afqmc
and duie. The pretraining rows add a ``pretraining:`` entry (its stage runs in the first row that needs it
and is kept for the next) and point the task at it. Their step counts are this machine's steps in 10 and
30 minutes, measured by ``--calibrate`` (a 30-step pretraining, alone on the machine); the 30-minute entry
continues the 10-minute one (``from: minilm-zh-mlm10``) for the remaining steps.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.experiment_rows import Comparison, main, shown
from pipeline.config.paths import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "chinese_initialisation.jsonl"
CALIBRATION = PROJECT_ROOT / "benchmarks" / "results" / "chinese_initialisation_calibration.json"
ZH_TASKS = ("zh_sentiment", "tnews", "afqmc", "cluener", "ccks_event", "duie")
#: the corpus: every Chinese task's training texts (never dev or test texts)
CORPUS = "{tasks:[" + ",".join(ZH_TASKS) + "]}"


def pretraining(name: str, source: str, steps: int, extra: str = "") -> str:
    """A ``-S`` override adding one pretraining entry (``extra``: more ``,key:value`` options)."""
    return (f"++pretraining.{name}={{from:{source},language:zh,corpus:{CORPUS},steps:{steps},"
            f"batch_size:32,maxlen:128,masking:{{whole_word:true}}{extra}}}")


def steps_per_minute() -> float:
    """This machine's pretraining steps per minute (``--calibrate``); refuses to guess."""
    if not CALIBRATION.is_file():
        raise SystemExit(f"{CALIBRATION.relative_to(PROJECT_ROOT)} is missing: run --calibrate first")
    return json.loads(CALIBRATION.read_text())["steps_per_minute"]


def variants() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {  # random first: the table shows each row's difference to it
        "random": ["backbones.minilm-zh.embedding_init=random"],
        "overlap (default)": [],
    }
    if CALIBRATION.is_file():
        ten, thirty = (math.floor(steps_per_minute() * minutes) for minutes in (10, 30))
        mlm10 = pretraining("minilm-zh-mlm10", "minilm-zh", ten)
        mlm30 = pretraining("minilm-zh-mlm30", "minilm-zh-mlm10", thirty - ten)
        rows["overlap + MLM 10 min"] = [mlm10, "++tasks.{task}.backbone=minilm-zh-mlm10"]
        rows["overlap + MLM 30 min"] = [mlm10, mlm30, "++tasks.{task}.backbone=minilm-zh-mlm30"]
    return rows


INITIALISATION = Comparison(
    name="zh-init",
    tasks=("zh_sentiment", "cluener", "ccks_event", "tnews", "afqmc", "duie"),
    variants=variants(),
    results=RESULTS,
    task_seeds=(("tnews", "[42]"), ("afqmc", "[42]"), ("duie", "[42]")),
)


def calibrate(project: Path, steps: int = 40, block: int = 10) -> dict:
    """Time a short pretraining in ``project`` (``dvc exp run pretrain@calibration``); this machine's steps per
    minute from its blocks after the first (the first holds the tracing of the step)."""
    override = pretraining("calibration", "minilm-zh", steps, f",log_every:{block}")
    argv = ["dvc", "exp", "run", "pretrain@calibration", "-S", "sweep=zh-init", "-S", override]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=project, check=True)
    result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{shown(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    history = json.loads((project / "reports" / "pretraining" / "calibration" / "history.json").read_text())
    timed = [row for row in history if row["step"] > block]
    seconds = sum(row["seconds"] for row in timed)
    figures = {"steps_per_minute": round(60 * len(timed) * block / seconds, 2), "timed_steps": len(timed) * block,
               "seconds": round(seconds, 1), "command": shown(argv), "cpu": cpu_model()}
    CALIBRATION.parent.mkdir(parents=True, exist_ok=True)
    CALIBRATION.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    return f"{os.cpu_count()} CPUs"


def pretraining_cost(variant: str) -> str:
    """The row's continued pretraining, as steps and this machine's minutes (none for the others)."""
    minutes = {"overlap + MLM 10 min": 10, "overlap + MLM 30 min": 30}.get(variant)
    if minutes is None:
        return "none"
    return f"{math.floor(steps_per_minute() * minutes)} steps, {minutes} min"


def readme_table(rows: list[dict], tasks: tuple[str, ...]) -> str:
    """Markdown: per row its pretraining cost and each task's test mean ± std over seeds (difference to random)."""
    by = {(row["task"], row["variant"]): row for row in rows}
    header = "| initialisation | continued pretraining | " + " | ".join(
        f"{task} ({by[(task, 'random')]['metric'] if (task, 'random') in by else ''}, "
        f"{len(INITIALISATION.seeds_of(task).split(','))} seed{'s' if ',' in INITIALISATION.seeds_of(task) else ''})"
        for task in tasks) + " |"
    lines = [header, "|---" * (2 + len(tasks)) + "|"]
    for variant in INITIALISATION.variants:
        cells = []
        for task in tasks:
            row, random = by.get((task, variant)), by.get((task, "random"))
            if row is None:
                cells.append("not measured")
                continue
            spread = "" if row["test_std"] is None else f" ± {row['test_std']:.3f}"
            delta = "" if variant == "random" or random is None else f" ({row['test_mean'] - random['test_mean']:+.3f})"
            cells.append(f"{row['test_mean']:.3f}{spread}{delta}")
        lines.append(f"| {variant} | {pretraining_cost(variant)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if "--readme" in sys.argv:
        from benchmarks.experiment_rows import read_results

        rows = read_results(RESULTS)
        print(readme_table(rows, tuple(task for task in INITIALISATION.tasks if any(r["task"] == task for r in rows))))
    elif "--calibrate" in sys.argv:
        print(calibrate(Path(sys.argv[sys.argv.index("--project") + 1]).resolve()))
    else:
        main(INITIALISATION, __doc__.splitlines()[0], label="initialisation")
