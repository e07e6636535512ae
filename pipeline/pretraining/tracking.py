"""A pretraining's MLflow run: tagged ``pretraining: <name>`` and ``kind: masked_lm``, recording its entry."""

from __future__ import annotations

from typing import Any

from pipeline.tracking.run import TaskRun


class PretrainingRun(TaskRun):
    """The run of ``pretraining.<name>`` (``task`` is the entry's name): its params, corpus and source."""

    def own_tags(self) -> dict[str, str]:
        from pipeline.tracking import store as tracking

        return {"pretraining": self.task, "kind": "masked_lm", **tracking.common_tags(self.params)}

    def own_params(self) -> dict[str, Any]:
        from pipeline.tracking.store import flatten

        values = {"pretraining": self.task, **self.params.pretraining[self.task].dump()}
        return {key: ("null" if value is None else value) for key, value in flatten(values).items()}

    def own_inputs(self) -> list[dict]:
        from pipeline.tracking.store import backbone_stage, lock_hashes

        source = self.params.pretraining[self.task].source
        return [{"path": path, "name": f"{self.task} source backbone", "md5": info["md5"], "context": "backbone"}
                for path, info in lock_hashes(f"{backbone_stage(self.params, source)}@{source}").items()
                if info["kind"] == "outs"]

    @property
    def label(self) -> str:
        name = f"pretraining {self.task}"
        return f"{name}@{self.tags['dvc_exp_name']}" if "dvc_exp_name" in self.tags else name
