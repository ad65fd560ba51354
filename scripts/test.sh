#!/usr/bin/env bash
# Run the whole test suite headless (sets up .venv first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p .runtime/xdg && chmod 700 .runtime/xdg
export XDG_RUNTIME_DIR="$PWD/.runtime/xdg" NAPARI_CONFIG="$PWD/.runtime/napari/settings.yaml" QT_API=pyqt6
unset QT_QPA_PLATFORM
export NUMBA_CACHE_DIR="$PWD/.runtime/numba-cache"
.venv/bin/npe2 validate napari_ctorgans --imports
xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python -m pytest -p no:cacheprovider -ra --durations=30 "$@"
