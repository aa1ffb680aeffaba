#!/usr/bin/env bash
# The checks CI runs before the tests (.ci/run): ruff's lint and format, mypy on qa/, and import-linter's layers
# contract (pyproject.toml). Each prints what it finds; the first that fails stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(qa tests benchmarks app.py)
.venv/bin/ruff check "${paths[@]}"
.venv/bin/ruff format --check "${paths[@]}"
.venv/bin/mypy
.venv/bin/lint-imports
