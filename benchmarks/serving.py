"""Prediction latency and throughput of a trained task, in process and through the served model.

    .venv/bin/python -m benchmarks.serving sst2                      # in process: float32 vs auto
    .venv/bin/python -m benchmarks.serving sst2 --server             # + the HTTP server of `make serve`
    .venv/bin/python -m benchmarks.serving conll03 --requests 50 --json serving.json

Needs the task's trained bundle (``models/tasks/<task>``, from ``dvc repro``); ``--server`` also needs
its logged model (``reports/<task>/model.json``). For each precision (``float32`` and what ``auto``
resolves to on this machine) it loads the bundle as ``predict`` does, then times single-row requests
(p50 and p99 over ``--requests`` test rows, after warm-up) and the whole test split in one call
(rows/s), and counts the test predictions whose decisions differ from float32's (labels, entities,
spans or triples as returned to a user; scores left out). With ``--server`` it starts ``python -m pipeline.commands.serve`` on a
free port of 127.0.0.1 and times the same single-row requests and one batch request over HTTP.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.config.paths import PROJECT_ROOT, prepared_dir, task_model_dir


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def latencies_ms(call: Callable[[dict], Any], rows: Sequence[dict], warmup: int = 3) -> list[float]:
    """Milliseconds of ``call(row)`` for each row, after ``warmup`` untimed calls."""
    for row in rows[:warmup]:
        call(row)
    out = []
    for row in rows:
        start = time.perf_counter()
        call(row)
        out.append(1000 * (time.perf_counter() - start))
    return out


def test_rows(task: str, columns: Sequence[str], limit: int | None) -> list[dict]:
    """The prepared test split's input columns, as a user would send them."""
    from pipeline.reporting.files import read_jsonl

    records = read_jsonl(prepared_dir(task) / "test.jsonl")[:limit]
    return [{column: record[column] for column in columns} for record in records]


def in_process(task: str, precision: str, requests: int, limit: int | None) -> tuple[dict, list[dict]]:
    """Latency and throughput of TaskPredictor with the bundle's precision replaced by ``precision``."""
    from pipeline.serving.bundle import read_bundle
    from pipeline.serving.predictor import TaskPredictor

    bundle = read_bundle(task_model_dir(task))
    bundle.meta["config"] = {**bundle.meta["config"], "precision": precision}
    start = time.perf_counter()
    predictor = TaskPredictor(bundle)
    load_s = time.perf_counter() - start
    rows = test_rows(task, predictor.input_columns, limit)
    single = latencies_ms(lambda row: predictor.predict([row]), rows[:requests])
    predictor.predict(rows[:64])  # warm
    start = time.perf_counter()
    outputs = predictor.predict(rows)
    batch_s = time.perf_counter() - start
    from pipeline.runtime.precision import gpu_bfloat16, resolve_precision

    resolved = resolve_precision(precision, gpu=gpu_bfloat16())[0]
    return {"path": "in process (predict command)", "precision": f"{precision} -> {resolved}", "load_s": load_s,
            "p50_ms": statistics.median(single), "p99_ms": percentile(single, 99),
            "rows_per_s": len(rows) / batch_s, "rows": len(rows)}, outputs


def decisions(output: Any) -> Any:
    """An output without its scores (floats): the label, entities, answer or triples a user acts on."""
    if isinstance(output, dict):
        kept = {key: decisions(value) for key, value in output.items() if not isinstance(value, float)}
        return {key: value for key, value in kept.items() if value != {}}
    if isinstance(output, (list, tuple)):
        return [decisions(value) for value in output]
    return output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, rows: list[dict]) -> Any:
    body = json.dumps({"dataframe_records": rows}).encode("utf-8")
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def served(task: str, requests: int, limit: int | None, columns: Sequence[str]) -> dict:
    """The same requests through ``python -m pipeline.commands.serve`` (MLflow's scoring server)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pipeline.commands.serve", task, "--port", str(port)],
                              cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        start = time.perf_counter()
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server stopped: {(server.stderr.read() if server.stderr else '')[-2000:]}")
            try:
                urllib.request.urlopen(base + "/ping", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        ready_s = time.perf_counter() - start
        rows = test_rows(task, columns, limit)
        single = latencies_ms(lambda row: post(base + "/invocations", [row]), rows[:requests])
        start = time.perf_counter()
        post(base + "/invocations", rows)
        batch_s = time.perf_counter() - start
        return {"path": "HTTP (make serve)", "precision": "auto", "load_s": ready_s,
                "p50_ms": statistics.median(single), "p99_ms": percentile(single, 99),
                "rows_per_s": len(rows) / batch_s, "rows": len(rows)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def render(task: str, results: list[dict], differing: int, compared: int) -> str:
    from pipeline.reporting.files import markdown_table

    rows = [[r["path"], r["precision"], f"{r['load_s']:.1f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
             f"{r['rows_per_s']:.1f} ({r['rows']} rows)"] for r in results]
    table = markdown_table(("path", "precision", "load / ready s", "single row p50 ms", "p99 ms", "test split rows/s"), rows)
    return f"{task}\n\n{table}\nauto vs float32: {differing} of {compared} test predictions differ\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--requests", type=int, default=200, help="single-row requests timed per path")
    parser.add_argument("--limit", type=int, default=None, help="test rows at most (default: all)")
    parser.add_argument("--server", action="store_true", help="also time the served model over HTTP")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    if not (task_model_dir(args.task) / "task.json").is_file():
        raise SystemExit(f"{task_model_dir(args.task)}: no trained model; run `dvc repro train@{args.task}` first")
    results, outputs = [], {}
    for precision in ("float32", "auto"):
        result, outputs[precision] = in_process(args.task, precision, args.requests, args.limit)
        results.append(result)
        print(f"{result['path']} {result['precision']}: p50 {result['p50_ms']:.1f} ms, "
              f"{result['rows_per_s']:.1f} rows/s", flush=True)
    differing = sum(decisions(a) != decisions(b) for a, b in zip(outputs["float32"], outputs["auto"]))
    if args.server:
        from pipeline.serving.bundle import read_bundle

        bundle = read_bundle(task_model_dir(args.task))
        results.append(served(args.task, args.requests, args.limit, bundle.kind.input_columns(bundle.cfg)))
    print(render(args.task, results, differing, len(outputs["auto"])))
    if args.json:
        args.json.write_text(json.dumps({"task": args.task, "results": results, "auto_vs_float32_differing": differing,
                                         "compared": len(outputs["auto"])}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
