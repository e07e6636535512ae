"""The continued-pretraining loop: seeded batches per step, blocks of steps, resumable block by block.

Every step's batch is a pure function of ``(seed, step)``: the documents come from a seeded permutation of
the corpus per pass over it, the masking from a generator seeded with the step. Together with the
checkpoint of the model, the optimizer and the dropout generators after every block
(:class:`BlockCheckpoints`), a run killed at any moment resumes after its last complete block and ends
with the weights an uninterrupted run has.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.pretraining.masking import MaskedBatch, MaskingRule, make_batch, mask_example
from pipeline.pretraining.mlm import masked_lm_loss
from pipeline.runtime import interrupts
from pipeline.runtime.tf_runtime import random_generators, tf

STATE = "state.json"
#: the seed stream of the held-out masking (fixed: every block scores the same masked held-out tokens)
HELDOUT_STREAM = 2**31 - 1


@dataclass(frozen=True)
class EncodedCorpus:
    """Token ids of each document (``[CLS] ... [SEP]``) and each token's word (None: special token)."""

    token_ids: list[np.ndarray]
    words: list[list[int | None]]

    def __len__(self) -> int:
        return len(self.token_ids)


class StepBatches:
    """The masked batch of any step, the same in every process (see the module docstring)."""

    def __init__(self, corpus: EncodedCorpus, batch_size: int, seed: int, rule: MaskingRule, mask_id: int,
                 random_ids: np.ndarray) -> None:
        self.corpus, self.batch_size, self.seed = corpus, batch_size, seed
        self.rule, self.mask_id, self.random_ids = rule, mask_id, random_ids

    @lru_cache(maxsize=4)
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.corpus))

    def __call__(self, step: int) -> MaskedBatch:
        n = len(self.corpus)
        picked = [int(self._order(i // n)[i % n]) for i in range(step * self.batch_size, (step + 1) * self.batch_size)]
        return self.masked(picked, np.random.default_rng([self.seed, HELDOUT_STREAM - 1, step]))

    def masked(self, documents: Sequence[int], rng: np.random.Generator) -> MaskedBatch:
        return make_batch([mask_example(self.corpus.token_ids[i], self.corpus.words[i], rng, self.rule,
                                        self.mask_id, self.random_ids) for i in documents])


def heldout_batches(batches: StepBatches, seed: int, limit: int = 512) -> list[MaskedBatch]:
    """The held-out corpus (its first ``limit`` documents), masked once with a fixed seed."""
    rng = np.random.default_rng([seed, HELDOUT_STREAM])
    documents = list(range(min(limit, len(batches.corpus))))
    return [batches.masked(documents[i:i + batches.batch_size], rng)
            for i in range(0, len(documents), batches.batch_size)]


def _inputs(batch: MaskedBatch) -> tuple[Any, ...]:
    return tuple(tf.constant(array) for array in
                 (batch.token_ids, batch.segment_ids, batch.positions, batch.targets, batch.weights))


_SPEC = [tf.TensorSpec([None, None], tf.int32)] * 4 + [tf.TensorSpec([None, None], tf.float32)]


def step_functions(model: Any, optimizer: Any) -> tuple[Callable, Callable]:
    """``(train_step, score)``: one optimizer step on a batch, and a batch's summed loss, hits and count."""

    @tf.function(input_signature=_SPEC)
    def train_step(token_ids, segment_ids, positions, targets, weights):
        with tf.GradientTape() as tape:
            loss, accuracy = masked_lm_loss(model([token_ids, segment_ids, positions], training=True), targets, weights)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss, accuracy

    @tf.function(input_signature=_SPEC)
    def score(token_ids, segment_ids, positions, targets, weights):
        loss, accuracy = masked_lm_loss(model([token_ids, segment_ids, positions], training=False), targets, weights)
        count = tf.reduce_sum(weights)
        return loss * count, accuracy * count, count

    return train_step, score


def heldout_scores(score: Callable, batches: list[MaskedBatch]) -> dict[str, float]:
    """Held-out masked-LM loss, perplexity (``exp(loss)``) and accuracy."""
    totals = np.zeros(3)
    for batch in batches:
        totals += [float(value) for value in score(*_inputs(batch))]
    loss = totals[0] / max(totals[2], 1.0)
    return {"heldout_loss": loss, "heldout_perplexity": float(np.exp(min(loss, 50.0))),
            "heldout_accuracy": totals[1] / max(totals[2], 1.0)}


class BlockCheckpoints:
    """``block-<step>/`` (model, optimizer, dropout generators) and ``state.json`` naming the last complete
    one, its history and the fingerprint of the pretraining it belongs to (another is never resumed)."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory, self.fingerprint = directory, fingerprint
        directory.mkdir(parents=True, exist_ok=True)

    def state(self) -> dict | None:
        path = self.directory / STATE
        if not path.is_file():
            return None
        state = json.loads(path.read_text(encoding="utf-8"))
        complete = (self.directory / state.get("checkpoint", "-")).is_dir()
        return state if state.get("fingerprint") == self.fingerprint and complete else None

    def save(self, step: int, checkpoint: tf.train.Checkpoint, history: list[dict], extra: dict) -> None:
        name = f"block-{step}"
        tmp = self.directory / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        checkpoint.write(str(tmp / "ckpt"))
        shutil.rmtree(self.directory / name, ignore_errors=True)
        os.replace(tmp, self.directory / name)
        interrupts.reached("checkpoint_write")
        state = {"fingerprint": self.fingerprint, "steps_done": step, "checkpoint": name, "history": history, **extra}
        tmp_state = self.directory / f".{STATE}.tmp"
        tmp_state.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp_state, self.directory / STATE)
        for old in self.directory.glob("block-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    def restore(self, checkpoint: tf.train.Checkpoint, state: dict) -> None:
        checkpoint.read(str(self.directory / state["checkpoint"] / "ckpt")).assert_existing_objects_matched()

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def training_state(model: Any, optimizer: Any) -> tf.train.Checkpoint:
    """What a step reads and changes: weights, optimizer slots and step, dropout generators."""
    return tf.train.Checkpoint(model=model, optimizer=optimizer, random=random_generators(model))


def pretrain(model: Any, optimizer: Any, batches: StepBatches, heldout: list[MaskedBatch], steps: int,
             block: int, checkpoints: BlockCheckpoints, on_block: Callable[[dict], None],
             progress: Any = None) -> list[dict]:
    """Train for ``steps`` steps in blocks of ``block``, resuming after the last saved block; after each
    block (and at step 0) one history row (train loss and accuracy of the block, held-out scores, seconds)
    goes to ``on_block``. Returns the whole history."""
    train_step, score = step_functions(model, optimizer)
    optimizer._create_all_weights(model.trainable_variables)  # slots exist, so that a restore fills them
    state_object = training_state(model, optimizer)
    state = checkpoints.state()
    if state is not None:
        checkpoints.restore(state_object, state)
        history, start = state["history"], state["steps_done"]
    else:
        history, start = [{"step": 0, **heldout_scores(score, heldout), "seconds": 0.0}], 0
        on_block(history[0])
    if progress is not None:
        progress.update(start)
    for first in range(start, steps, block):
        last = min(first + block, steps)
        started, losses, accuracies = time.monotonic(), [], []
        for step in range(first, last):
            loss, accuracy = train_step(*_inputs(batches(step)))
            losses.append(float(loss))
            accuracies.append(float(accuracy))
            interrupts.reached("batch")
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{np.mean(losses):.3f}")
        seconds = time.monotonic() - started
        row = {"step": last, "loss": float(np.mean(losses)), "accuracy": float(np.mean(accuracies)),
               **heldout_scores(score, heldout), "seconds": seconds}
        history.append(row)
        checkpoints.save(last, state_object, history, {})
        on_block(row)
    return history
