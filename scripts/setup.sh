#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine: Debian packages (when missing and we are root),
# then a virtual environment in .venv/ with the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: espeak-ng (speech synthesis for lip-sync training data and tests).
need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
# chromium: the real-browser test of the demo (tests/test_browser.py, driven by playwright)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "Please install these Debian packages (needs root): ${need_apt[*]}" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
# the project itself, editable: the `vasa` and `vasa-safety` commands (pyproject.toml); nothing is fetched
.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
.venv/bin/python -c "import torch, cv2, mediapipe, facenet_pytorch, av, librosa, gradio, dlib; print('setup ok: torch', torch.__version__)"
