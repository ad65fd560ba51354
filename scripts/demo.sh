#!/usr/bin/env bash
# Run the demo on the built-in phantom (sets up .venv first). Headless by default: outputs and a screenshot PNG
# go to ./demo-output. Pass --gui to open napari with the sample and the plugin's widgets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p .runtime/xdg && chmod 700 .runtime/xdg
export XDG_RUNTIME_DIR="$PWD/.runtime/xdg" NAPARI_CONFIG="$PWD/.runtime/napari/settings.yaml" QT_API=pyqt6
if [ -n "${DISPLAY:-}" ] || [[ " $* " == *" --gui "* && -n "${WAYLAND_DISPLAY:-}" ]]; then
  exec .venv/bin/ctorgans demo "$@"
fi
exec xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/ctorgans demo "$@"
