#!/usr/bin/env bash
# make bench: the render benchmark, then the rollout benchmark (bench/README.md).
#
#   scripts/bench.sh [bench/run.py options]        e.g. BENCH_SIZES=100,1000 scripts/bench.sh
#
# The rollout benchmark (bench/rollout.py: N containers of the target image over SSH; sizes
# BENCH_ROLLOUT_SIZES, default 10,30; extra hostfw_serial values for the armed window
# BENCH_ROLLOUT_SERIALS, default 5) runs as root with podman, under flock /tmp/hostfw-podman.lock;
# BENCH_ROLLOUT=0 skips it, BENCH_ROLLOUT=only runs only it.
#
# Installs the benchmark's pinned requirements (Aerleon, matplotlib: bench/requirements.txt) into
# the project's virtualenv (.venv, or $VENV), then runs
# bench/run.py, which writes bench/results/{results.json,table.md,time_vs_hosts.png}.
# The default sizes take about 5 minutes on 2 cores; BENCH_SIZES, BENCH_POLICIES, BENCH_REPEAT,
# BENCH_AERLEON_MAX_HOSTS, BENCH_VARS_MAX_HOSTS, BENCH_MATRIX_MAX_HOSTS, BENCH_TIMEOUT and
# BENCH_WORKDIR override the defaults (bench/run.py --help).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV_DIR="${VENV:-$ROOT/.venv}"
PY="$VENV_DIR/bin/python"
if [[ ! -x "$PY" ]]; then
    echo "bench.sh: $PY not found; run 'make venv' (or 'make bench', which does)" >&2
    exit 2
fi
STAMP="$VENV_DIR/.bench-installed"

if [[ ! -f "$STAMP" || bench/requirements.txt -nt "$STAMP" ]]; then
    echo "bench.sh: installing bench/requirements.txt into $VENV_DIR"
    "$PY" -m pip install --disable-pip-version-check -q -r bench/requirements.txt
    touch "$STAMP"
fi

# ansible-playbook and aclgen are found next to $PY first (run.py), then on PATH
PATH="$(dirname "$PY"):$PATH"
export PATH
rc=0
if [[ "${BENCH_ROLLOUT:-1}" != only ]]; then
    "$PY" bench/run.py "$@" || rc=$?
fi
if [[ "${BENCH_ROLLOUT:-1}" != 0 ]]; then
    flock /tmp/hostfw-podman.lock "$PY" bench/rollout.py || rc=$?
fi
exit $rc
