"""Data health of a task's prepared splits: counts, duplicates, overlap, truncation, fatal problems.

* :mod:`.fatal`: records training cannot use (missing fields, bad labels, spans out of range or
  not spelling their text), reported at ``file:line: field``;
* :mod:`.duplicates`: the same input twice in a split (exact copies, conflicting labels) and
  inputs shared between splits;
* :mod:`.truncation`: texts cut at ``maxlen`` by the task's tokenizer and the entities, answers or
  triples cut with them;
* :mod:`.report`: the whole report (``reports/<task>/data_health.json``), its warnings, flat
  metrics for MLflow (:func:`health_metrics`) and a short printed summary.

Deduplication itself (``data.dedupe``) happens in the prepare stage: :func:`pipeline.data.readers.base.dedupe_splits`.
"""

