#!/usr/bin/env bash
# Create .venv with the pinned CPU build of torch and restorekit installed editable with its dev
# extras. Idempotent: a second run only re-checks the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
# Real MTCNN weights (pnet.pt/rnet.pt/onet.pt) for the offline face detector and its tests. Only the
# files are used; the package is never imported (it pins an old torch, hence --no-deps).
python -m pip install -q --no-deps "facenet-pytorch==2.6.0"
