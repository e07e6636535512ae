"""The Hugging Face stack's own virtual environment for ``benchmarks.side_by_side``, built once and cached.

    .venv/bin/python -m benchmarks.hf_env                 # build or check ~/.cache/bert4keras-pipeline/hf-bench-venv
    .venv/bin/python -m benchmarks.hf_env --hf-venv PATH

torch and transformers never enter the project's requirements: they live only in this venv, outside
the repository. torch is pinned to the CPU build that lies on the machine's disk; pip is asked first
(``--dry-run --report``) where it would take torch from, and the install is refused unless that is a
local file, so a multi-GB CUDA build is never downloaded by accident.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: exact pins of the other stack; transformers 5.17 needs torch >= 2.5
PINS = ("torch==2.13.0", "transformers==5.17.0")
#: written last into the venv: the pins it was built with (a venv without it is rebuilt)
STAMP = ".bench-pins"


def log(message: str) -> None:
    print(f"[hf_env] {message}", file=sys.stderr, flush=True)


def default_venv() -> Path:
    """``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/bert4keras-pipeline/hf-bench-venv``."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "bert4keras-pipeline" / "hf-bench-venv"


def _pip(python: Path, *args: str) -> None:
    """Run pip in the venv; its stderr is passed on without the noise of missing local index folders."""
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], stderr=subprocess.PIPE,
                          text=True)
    sys.stderr.writelines(line for line in done.stderr.splitlines(keepends=True)
                          if not line.startswith("WARNING: Location"))
    done.check_returncode()


def check_torch_is_local(python: Path) -> None:
    """Refuse to go on when pip would fetch torch from anywhere but a local file."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        _pip(python, "install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report), *PINS)
        plan = json.loads(report.read_text(encoding="utf-8"))
    for item in plan.get("install", []):
        if item["metadata"]["name"].lower() == "torch":
            url = item.get("download_info", {}).get("url", "")
            if not url.startswith("file:"):
                raise SystemExit(
                    f"pip would download torch {item['metadata']['version']} from {url}; only a local CPU build "
                    f"is wanted here (pins {' '.join(PINS)}). Put the wheel in a --find-links folder, or edit PINS."
                )
            log(f"torch {item['metadata']['version']} from {url}")
            return
    raise SystemExit(f"pip's plan for {' '.join(PINS)} installs no torch; see the report above")


def ensure_venv(venv: Path | None = None) -> Path:
    """The venv's python, after building the venv if it is missing or was built with other pins."""
    venv = Path(venv or default_venv()).expanduser()
    python, stamp = venv / "bin" / "python", venv / STAMP
    if python.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8").split() == list(PINS):
        return python
    log(f"building {venv} with {' '.join(PINS)} (once; a few minutes)")
    stamp.unlink(missing_ok=True)
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    check_torch_is_local(python)
    _pip(python, "install", "--quiet", *PINS)
    probe = "import torch, transformers; assert torch.version.cuda is None, torch.version.cuda; " \
            "print(torch.__version__, transformers.__version__)"
    versions = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    stamp.write_text("\n".join(PINS) + "\n", encoding="utf-8")
    log(f"ready: torch, transformers {versions}")
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf-venv", type=Path, default=default_venv(), help="the venv (default: %(default)s)")
    print(ensure_venv(parser.parse_args().hf_venv))


if __name__ == "__main__":
    main()
