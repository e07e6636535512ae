"""Which source files a stage runs: the import closure of its entry module, read from the source (AST).

Imports anywhere in a module count (inside functions too), and so do the ``__init__.py`` of every
package on the way. The kind registry (:mod:`pipeline.kinds`) and factory (:mod:`pipeline.kinds.factory`)
load kind packages by name; for a task, the closure follows only that task's kind. The result is what ``dvc.yaml`` must list as a stage's code
dependencies (a test checks it) and what the resume fingerprint of a training hashes. No TensorFlow.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

from pipeline.config.paths import PROJECT_ROOT

PACKAGE = "pipeline"
#: the registry imports a kind's package (its ``Options``) by name, the factory its ``kind`` module
REGISTRY_MODULE = "pipeline.kinds"
FACTORY_MODULE = "pipeline.kinds.factory"


def module_path(module: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The file of a ``pipeline`` module (a package's ``__init__.py``), or None if there is none."""
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def imports_of(path: Path, module: str) -> frozenset[str]:
    """The ``pipeline`` modules ``path`` imports anywhere in its body (names imported from a package
    count as its submodules when such a submodule exists)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(name for name in found if name == PACKAGE or name.startswith(PACKAGE + "."))


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` (imports for type checkers only)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _with_parents(module: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__`` first."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(entry: str, kind: str | None = None, root: Path = PROJECT_ROOT) -> list[Path]:
    """Every source file running ``entry`` may import, relative to ``root``, sorted; ``kind`` names the
    kind package the registry loads (None: no kind package)."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_path(module, root)
        if path is None:
            continue
        files.add(path.relative_to(root))
        todo.extend(parent for parent in _with_parents(module) if parent not in seen)
        todo.extend(imports_of(path, module))
        if module == REGISTRY_MODULE and kind is not None:
            todo.append(f"{REGISTRY_MODULE}.{kind}")
        if module == FACTORY_MODULE and kind is not None:
            todo.append(f"{REGISTRY_MODULE}.{kind}.kind")
    return sorted(files)


def stage_code(stage: str, kind: str | None = None, root: Path = PROJECT_ROOT) -> list[Path]:
    """The source files of DVC stage ``stage`` (``pipeline.stages.<stage>``) for a task of ``kind``."""
    return closure(f"{PACKAGE}.stages.{stage}", kind, root)


def code_digest(files: list[Path], root: Path = PROJECT_ROOT) -> str:
    """A hash of the files' paths and contents."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.as_posix().encode())
        digest.update((root / path).read_bytes())
    return digest.hexdigest()
