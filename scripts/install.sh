#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment. Idempotent.
#
#   bash scripts/install.sh            # creates .venv/ at the repo root if missing
#
# torch: a CPU build is installed unless a CUDA GPU is visible (nvidia-smi works) or
# SEDLIB_TORCH names the requirement to install, e.g.
#   SEDLIB_TORCH="torch==2.13.0" bash scripts/install.sh            # CUDA build from PyPI
#   PIP_EXTRA_INDEX_URL=<pytorch cpu index> bash scripts/install.sh  # CPU build elsewhere
# The CPU pin is the local version "+cpu", so pip fails loudly rather than silently pulling
# several GB of CUDA packages on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SEDLIB_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
STAMP="$VENV/.sedlib-installed"
want="$(cat requirements.txt pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import sedlib" 2>/dev/null; then
  echo "[install] $VENV is up to date"
  exit 0
fi

# Room: the environment takes ~2.3 GB (torch CPU, deepspeed, onnxruntime, openvino, jupyter),
# pip needs more while it unpacks; say so before pip fails half-way with "No space left on device"
FREE_KB="$(df -Pk "$(dirname "$VENV")" 2>/dev/null | awk 'NR == 2 {print $4}')"
if [ -n "$FREE_KB" ] && [ "$FREE_KB" -lt 3500000 ]; then
  echo "[install] WARNING: $((FREE_KB / 1000)) MB free on the disk of $(cd "$(dirname "$VENV")" && pwd);" \
    "the environment needs about 3.5 GB while installing (2.3 GB after). Free space, or set SEDLIB_VENV" \
    "to a folder on a larger disk (the clip cache: 'sedlib cache --prune' / '--clear')." >&2
fi

# System packages: Chromium drives kaleido's static (PNG) export of plotly figures. Skipped where
# apt or root is missing (then figures are written as HTML and PNG export reports what is missing).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "[install] apt: chromium (for PNG figures)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || echo "[install] WARNING: could not install chromium; PNG export of figures will not work" >&2
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
export DS_BUILD_OPS=0 PIP_DISABLE_PIP_VERSION_CHECK=1
# pip, minus the noise of unreachable extra-index folders; its exit status is kept (pipefail)
pip_q() { "$PY" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

if [ -n "${SEDLIB_TORCH:-}" ]; then
  TORCH_REQ="$SEDLIB_TORCH"
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  TORCH_REQ="torch==2.13.0"
else
  TORCH_REQ="torch==2.13.0+cpu"
fi
echo "[install] torch: $TORCH_REQ"
if ! pip_q install -q "$TORCH_REQ"; then
  echo "[install] ERROR: could not install '$TORCH_REQ'." >&2
  echo "[install] For a CPU build, point pip at PyTorch's CPU wheel index (PIP_EXTRA_INDEX_URL)," >&2
  echo "[install] or set SEDLIB_TORCH to the torch requirement you want." >&2
  exit 1
fi
# (from the metadata: importing torch before numpy is installed prints a "Failed to initialize
# NumPy" warning)
TORCH_VERSION="$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))')"
CONSTRAINTS="$(mktemp)"; trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

echo "[install] pinned requirements (a few minutes on a fresh machine)"
pip_q install -q -r requirements.txt -c "$CONSTRAINTS"
"$PY" -m pip check >/dev/null || { "$PY" -m pip check; exit 1; }
pip_q install -q --no-deps -e .

# torchaudio's shipped extension links CUDA libraries; without a CUDA torch it cannot load and
# makes `import torchaudio` fail. Removing it leaves the pure-Python code paths sedlib uses.
if [ "$("$PY" -c 'import torch; print(torch.version.cuda is None)')" = "True" ]; then
  SP="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -f "$SP"/torchaudio/lib/*.so
fi

# DS_ACCELERATOR: DeepSpeed otherwise warns that it "was unable to detect" a GPU on a CPU build
DS_ACCELERATOR="$("$PY" -c 'import torch; print("cuda" if torch.version.cuda else "cpu")')" \
  "$PY" - <<'PYEOF'
import importlib, torch
# sedlib.evaluate first: it hides dcase_util's pkg_resources notice before sed_scores_eval loads
for m in ["sedlib.evaluate", "torchaudio", "deepspeed", "sed_scores_eval", "papermill", "plotly",
          "ipywidgets", "rotary_embedding_torch", "safetensors", "soundfile", "h5py", "submitit", "sedlib"]:
    importlib.import_module(m)
print(f"[install] environment OK: torch {torch.__version__} (cuda: {torch.version.cuda})")
PYEOF
# a Jupyter kernel named after the project, so JupyterLab started elsewhere finds this venv
"$PY" -m ipykernel install --sys-prefix --name sedlib --display-name "Python (sedlib)" >/dev/null
# in a git checkout: notebooks saved by JupyterLab (autosave writes outputs) are committed and
# compared without their outputs (nbstripout's git filter; .git/config, not the repository)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  ABS_PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
  # keep the committed cell ids; drop what a kernel adds to language_info
  STRIP="\"$ABS_PY\" -m nbstripout --keep-id --extra-keys 'metadata.language_info.codemirror_mode
    metadata.language_info.file_extension metadata.language_info.mimetype
    metadata.language_info.nbconvert_exporter metadata.language_info.pygments_lexer
    metadata.language_info.version'"
  STRIP="$(echo $STRIP)"  # one line
  { "$PY" -m nbstripout --install --attributes .git/info/attributes >/dev/null &&
    git config filter.nbstripout.clean "$STRIP" && git config diff.ipynb.textconv "$STRIP -t"; } ||
    echo "[install] WARNING: could not set up the nbstripout git filter" >&2
fi
echo "$want" > "$STAMP"
