#!/usr/bin/env bash
# Set up .venv (pinned CPU torch, restorekit editable with its dev extras) and run lint + tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-dev.sh
. .venv/bin/activate
ruff check src tests benchmarks
python -m pytest -q -p no:cacheprovider "$@"
