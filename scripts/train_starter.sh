#!/usr/bin/env bash
# Reproduce the built-in starter model (docs/starter-model.md): three training stages on the starter cases
# (domain-randomised phantoms + the weakly labelled thorax of ../shared/data), then export to
# src/napari_ctorgans/models/starter.safetensors. About 45 minutes on 2 CPU cores. Usage: bash scripts/train_starter.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
runs="${1:-runs}"
.venv/bin/ctorgans train --preset starter --output-dir "$runs/starter" --overwrite
.venv/bin/ctorgans train --preset starter-refine --init "$runs/starter/last.pt" --output-dir "$runs/starter-refine" --overwrite
.venv/bin/ctorgans train --preset starter-adapt --init "$runs/starter-refine/last.pt" --output-dir "$runs/starter-adapt" --overwrite
.venv/bin/python -c "import sys; from napari_ctorgans.models import export_starter; print('wrote', export_starter(sys.argv[1], overwrite=True))" "$runs/starter-adapt/last.pt"
.venv/bin/python benchmarks/eval_real.py
