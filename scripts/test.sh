#!/usr/bin/env bash
# The whole test suite, stage by stage.  `make test` runs this; CI runs `make test` as root with CI=true.
#
#   scripts/test.sh                 every stage, in order
#   scripts/test.sh unit lint ...   only the named stages (in the order given)
#
# Stages: unit dataplane molecule sanity ansible-units lint build
#
# Every stage runs; a failed stage fails the run (exit 1) and the summary at the end names it.
# FAIL_FAST=1 stops at the first failure.
# Stages that need root, nft or podman are SKIPPED with the reason outside CI, and FAIL when CI=true.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
VENV="${VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
PY="$VENV/bin/python"
CI="${CI:-false}"
ALL_STAGES=(unit dataplane molecule sanity ansible-units lint build)

# Keep ansible quiet and self-contained: no ~/.ansible.cfg surprises, no stray collections.
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.collections"
export ANSIBLE_LOCAL_TEMP="${TMPDIR:-/tmp}/hostfw-ansible-local"

is_ci() { [[ "$CI" == "true" || "$CI" == "1" ]]; }

SKIP_REASON=""
# require WHAT CONDITION-COMMAND...: succeed if the command succeeds; otherwise record why.
require() {
    local what="$1"; shift
    if "$@" >/dev/null 2>&1; then return 0; fi
    SKIP_REASON="${SKIP_REASON:+$SKIP_REASON; }$what"
    return 1
}
is_root() { [[ $(id -u) -eq 0 ]]; }

# Called by stages that cannot run here.  Returns 77 (skip) outside CI, 1 (fail) in CI.
cannot_run() {
    if is_ci; then
        echo "FAIL: this stage cannot run: $SKIP_REASON (CI=true: skipping is not allowed)" >&2
        return 1
    fi
    echo "SKIP: $SKIP_REASON (run as root on a machine with these; CI=true turns this into a failure)"
    return 77
}

# --- system packages ------------------------------------------------------------------------
ensure_system_deps() {
    local missing
    missing="$("$ROOT/scripts/install-system-deps.sh" --check 2>/dev/null)" && return 0
    if is_root; then
        echo "== installing missing system packages: $missing"
        "$ROOT/scripts/install-system-deps.sh"
    else
        echo "== note: missing system packages ($missing); not root, so not installing them." \
             "Stages that need them will skip."
    fi
}

# --- stages ---------------------------------------------------------------------------------
pytest_run() {
    "$PY" -m pytest -p no:cacheprovider -q "$@"
}

stage_unit() {
    # four workers on CI's two cores: many tests wait on subprocesses (ansible-playbook, nft, a browser)
    pytest_run -n "${HOSTFW_TEST_WORKERS:-4}" tests/unit tests/integration
}

stage_dataplane() {
    SKIP_REASON=""
    local ok=true
    require "not root" is_root || ok=false
    require "nft not installed" command -v nft || ok=false
    require "ip (iproute2) not installed" command -v ip || ok=false
    $ok || { cannot_run; return; }
    pytest_run tests/dataplane
}

stage_molecule() {
    SKIP_REASON=""
    local ok=true
    require "not root" is_root || ok=false
    require "podman not installed" command -v podman || ok=false
    require "runc not installed" command -v runc || ok=false
    require "debootstrap not installed" command -v debootstrap || ok=false
    $ok || { cannot_run; return; }
    bash scripts/molecule.sh
}

stage_sanity() {
    "$ROOT/scripts/ansible-test.sh" sanity --python 3.11
}

stage_ansible_units() {
    # The plugins that Ansible loads (modules, module_utils, actions, filters), in ansible-test's
    # own environment. The pure core (tests/unit/plugins/plugin_utils) imports nothing from Ansible
    # and runs in the unit stage already.
    "$ROOT/scripts/ansible-test.sh" units --python 3.11 tests/unit/plugins/modules/ tests/unit/plugins/module_utils/ \
        tests/unit/plugins/action/ tests/unit/plugins/filter/
}

stage_lint() {
    local rc=0
    echo "-- ansible-lint --profile production"
    # A cache of its own: ansible-lint puts the checkout, as a collection, first on the collections path from
    # its cache (default ~/.ansible), and keeps a copy it finds there with the same version; another
    # checkout's copy there (other modules) fails syntax-check here.
    ANSIBLE_HOME="$ROOT/.cache/ansible-lint" ansible-lint --profile production || rc=1
    echo "-- antsibull-changelog lint"
    antsibull-changelog lint || rc=1
    return $rc
}

stage_build() {
    local tmp rc=0
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/hostfw-build.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    echo "-- ansible-galaxy collection build"
    ansible-galaxy collection build --output-path "$tmp/dist" "$ROOT" || return 1
    local tarball
    tarball="$(ls "$tmp"/dist/hostfw-nftables-*.tar.gz)"
    echo "-- ansible-galaxy collection install $(basename "$tarball")"
    ANSIBLE_COLLECTIONS_PATH="$tmp/collections" \
        ansible-galaxy collection install --offline --force -p "$tmp/collections" "$tarball" || return 1
    local inst="$tmp/collections/ansible_collections/hostfw/nftables"
    [[ -d "$inst" ]] || { echo "installed collection not found at $inst" >&2; return 1; }
    # make sure nothing from the checkout leaks into the artifact
    local junk
    junk="$(tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.collections|\.cache|\.ci|tests/output|__pycache__)(/|$)' | head -5)"
    if [[ -n "$junk" ]]; then
        echo "FAIL: the tarball contains build_ignore'd paths:" >&2; echo "$junk" >&2; rc=1
    fi
    (
        # Only the installed copy is visible: other cwd, only the temp collections path.
        cd "$tmp"
        export ANSIBLE_COLLECTIONS_PATH="$tmp/collections"
        "$PY" "$ROOT/scripts/check-plugin-docs.py" "$inst"
    ) || rc=1
    (
        # A real render with the installed collection: the example inventory, no checkout on the path.
        cd "$tmp"
        cp -r "$ROOT/examples/two-node-cluster" "$tmp/inventory"
        echo "-- render examples/two-node-cluster with the installed collection"
        ANSIBLE_COLLECTIONS_PATH="$tmp/collections" ansible-playbook -i "$tmp/inventory/inventory.yml" hostfw.nftables.render \
            -e "hostfw_output_dir=$tmp/render" >"$tmp/render.log" 2>&1 || { cat "$tmp/render.log"; exit 1; }
        for f in policy-llm-control-plane.nft policy-llm-worker.nft matrix.json matrix.md matrix.html; do
            [[ -s "$tmp/render/$f" ]] || { echo "FAIL: the render wrote no $f" >&2; exit 1; }
        done
        "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); assert len(m["cells"]) == 20, len(m["cells"])' \
            "$tmp/render/matrix.json" || exit 1
        echo "rendered the tables and the matrix (20 cells) with the installed collection"
    ) || rc=1
    return $rc
}

# --- driver ---------------------------------------------------------------------------------
stages=("$@")
[[ ${#stages[@]} -eq 0 ]] && stages=("${ALL_STAGES[@]}")
for s in "${stages[@]}"; do
    if ! declare -F "stage_${s//-/_}" >/dev/null; then
        echo "unknown stage '$s' (stages: ${ALL_STAGES[*]})" >&2
        exit 2
    fi
done

if [[ ! -x "$PY" ]]; then
    echo "no virtualenv at $VENV: run 'make venv' (or 'make test', which does it)" >&2
    exit 2
fi

ensure_system_deps

summary=()
failed=0
for s in "${stages[@]}"; do
    echo
    echo "==================== stage: $s ===================="
    start=$(date +%s)
    ( "stage_${s//-/_}" )
    rc=$?
    secs=$(( $(date +%s) - start ))
    case $rc in
        0) status=PASS ;;
        77) status=SKIP ;;
        *) status=FAIL; failed=1 ;;
    esac
    summary+=("$(printf '%-10s %-5s %5ss' "$s" "$status" "$secs")")
    echo "==================== $s: $status (${secs}s) ===================="
    if [[ $failed -eq 1 && "${FAIL_FAST:-0}" == "1" ]]; then break; fi
done

echo
echo "==================== summary ===================="
printf '%s\n' "${summary[@]}"
mkdir -p tests/output
printf '%s\n' "${summary[@]}" > tests/output/test-summary.txt
if [[ $failed -ne 0 ]]; then
    echo "RESULT: FAIL"
    exit 1
fi
echo "RESULT: PASS"
