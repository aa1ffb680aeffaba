"""The rooms of docs/architecture.md hold: each search engine's library is imported by its backend alone, and
no module imports one above it (import-linter's layers contract in pyproject.toml)."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_each_engine_library_is_imported_by_its_backend_alone():
    importers: dict[str, set[str]] = {"faiss": set(), "qdrant_client": set(), "bm25s": set()}
    for path in sorted((ROOT / "qa").glob("*.py")):
        for library in imported_modules(path) & set(importers):
            importers[library].add(path.name)
    assert importers == {"faiss": {"segments.py"}, "qdrant_client": {"qdrant.py"}, "bm25s": set()}


def test_no_module_imports_one_above_it():
    lint_imports = Path(sys.executable).parent / "lint-imports"  # installed beside the tests' Python
    done = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "1 kept, 0 broken" in done.stdout, done.stdout[-3000:]
