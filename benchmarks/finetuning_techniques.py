"""Each fine-tuning technique against plain full fine-tuning, on the same data and budget, over 3 seeds.

    .venv/bin/python -m benchmarks.finetuning_techniques --project ../techniques   # runs what is missing
    .venv/bin/python -m benchmarks.finetuning_techniques --table                   # the README table

Every row is one DVC experiment in ``--project`` (benchmarks/experiment_rows.py): ``dvc exp run
evaluate@<task> -S sweep=techniques -S '++tasks.<task>.seeds=[42,43,44]'`` plus the row's own options
under ``tasks.<task>.``. Run it alone on the machine: a row that shared the CPU has no meaningful time.
"""

from __future__ import annotations

from benchmarks.experiment_rows import Comparison, main
from pipeline.config.paths import PROJECT_ROOT

#: row name -> its options under ``tasks.<task>.``; plain first
OPTIONS: dict[str, list[str]] = {
    "plain": [],
    "frozen + BiLSTM features": ["backbone_training=frozen",
                                 "features={last_layers:4,combine:concat,bilstm_units:128}", "learning_rate=1e-3"],
    "top_layers: 2": ["backbone_training={top_layers:2}"],
    "unfreeze_after_epochs: 1": ["unfreeze_after_epochs=1"],
    "layerwise_lr_decay: 0.8": ["layerwise_lr_decay=0.8"],
    "ema: 0.99": ["ema={decay:0.99}"],
    "fgm: 0.5": ["adversarial={method:fgm,epsilon:0.5}"],
    "extend_vocab": ["tokenizer={extend_vocab:{min_count:5,max_new:98}}"],
}

TECHNIQUES = Comparison(
    name="techniques",
    tasks=("sst2", "conll03", "zh_sentiment"),
    variants={row: ["++tasks.{task}." + option for option in options] for row, options in OPTIONS.items()},
    results=PROJECT_ROOT / "benchmarks" / "results" / "finetuning_techniques.jsonl",
)

if __name__ == "__main__":
    main(TECHNIQUES, __doc__.splitlines()[0], label="technique")
