#!/usr/bin/env bash
# Sets up what the project needs on a fresh machine, printing one line per step.
#   bash scripts/setup.sh runtime   the demo, the engine and the CLI (what `make demo` needs)
#   bash scripts/setup.sh all       + tests, training and evaluation tools (what `make test` needs)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-all}"
step() { echo "==> [setup] $*"; }

# Debian packages for tests and tools only: espeak-ng (speech for lip-sync training data and tests) and
# chromium (the real-browser test of the demo, driven by playwright).
if [ "$mode" = all ]; then
  need_apt=()
  command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      step "Debian packages: ${need_apt[*]} (apt-get; about a minute)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
      echo "Please install these Debian packages (needs root): ${need_apt[*]}" >&2
    fi
  fi
fi

pip_install() {  # pip's own "Collecting ..." lines show progress; the index warnings of this machine are hidden
  # (a failing pip fails the pipeline under pipefail, so set -e stops the set-up; grep finding nothing does not)
  .venv/bin/pip install --disable-pip-version-check --progress-bar on "$@" 2>&1 \
    | { grep --line-buffered -v -e "is ignored: it is neither a file nor a directory" \
             -e "^Requirement already satisfied" || true; }
}

[ -x .venv/bin/python ] || { step "virtual environment in .venv/"; python3 -m venv .venv; }
step "Python packages for the runtime (the first time: several GB incl. torch, about 5 minutes)"
pip_install -r requirements.txt
step "packages installed without their declared pins (mediapipe, facenet-pytorch: see requirements-nodeps.txt)"
pip_install --no-deps -r requirements-nodeps.txt
if [ "$mode" = all ]; then
  step "test, training and evaluation packages (requirements-dev.txt, requirements-eval.txt)"
  pip_install -r requirements-dev.txt -r requirements-eval.txt
  pip_install --no-deps -r requirements-eval-nodeps.txt
fi
# the project itself, editable: the `vasa` and `vasa-safety` commands (pyproject.toml); nothing is fetched
step "the project itself (editable install: the vasa and vasa-safety commands)"
pip_install --no-deps --no-build-isolation -e .
step "checking the Whisper speech encoder's weights (from the pinned wheels; one sentence if missing or damaged)"
.venv/bin/python -m vasa_core.whisper check
step "checking the imports"
.venv/bin/python -c "import torch, cv2, mediapipe, facenet_pytorch, av, librosa, gradio, dlib; print('==> [setup] ok: torch', torch.__version__)"
