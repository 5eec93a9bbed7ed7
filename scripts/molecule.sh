#!/usr/bin/env bash
# Run the molecule scenarios on the locally built Debian targets, and the platform tests.
#
#   scripts/molecule.sh [RUN ...]
#
# A RUN is SCENARIO@SUITE (SUITE: bullseye = Debian 11, bookworm = Debian 12, trixie = Debian 13),
# SCENARIO alone (on bookworm), or "platforms" (pytest tests/platforms: the golden tables through the
# real module with each release's own nft and python3, in a chroot inside a network namespace).
# Without arguments: default on all three releases, rollback on Debian 11 and 12, fleet, failsafe,
# coexist and staged on Debian 12, then platforms.
#
# Builds each release's image when needed (scripts/build-image.sh SUITE, cached by recipe hash),
# points podman at molecule/containers.conf, runs `molecule test -s SCENARIO` with
# HOSTFW_TARGET_IMAGE and HOSTFW_TARGET_SUITE set for each run, prints the wall time of every build
# and run, and exits non-zero if any failed. Needs root, podman, debootstrap, and molecule +
# pytest-testinfra + ansible-core on PATH (the repo's venv).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO}" || exit 2
export CONTAINERS_CONF="${REPO}/molecule/containers.conf"
export MOLECULE_GLOB="molecule/*/molecule.yml"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
BASE_CONFIG="${REPO}/molecule/resources/config.yml"
DEFAULT_SUITE=bookworm
RUNS=("$@")
if [[ ${#RUNS[@]} -eq 0 ]]; then
    RUNS=(default@bullseye default@bookworm default@trixie rollback@bullseye rollback@bookworm fleet@bookworm
          failsafe@bookworm coexist@bookworm staged@bookworm platforms)
fi

for tool in podman molecule ansible-playbook; do
    if ! command -v "${tool}" >/dev/null; then
        echo "molecule.sh: ${tool} not found on PATH" >&2
        exit 2
    fi
done

# the venv's python (the one molecule runs with) for the platform tests
PYTHON="$(dirname "$(command -v molecule)")/python3"
[[ -x "${PYTHON}" ]] || PYTHON=python3

# the collection is imported as ansible_collections.hostfw.nftables through this link
LINK="${REPO}/.collections/ansible_collections/hostfw/nftables"
if [[ ! -e "${LINK}" ]]; then
    mkdir -p "$(dirname "${LINK}")"
    ln -s ../../.. "${LINK}"
fi

# normalise the runs to SCENARIO@SUITE and check them before anything is built
declare -a PLAN
declare -A SUITES_NEEDED
for run in "${RUNS[@]}"; do
    if [[ "${run}" == platforms ]]; then
        PLAN+=("platforms")
        continue
    fi
    scenario="${run%%@*}"
    suite="${DEFAULT_SUITE}"
    [[ "${run}" == *@* ]] && suite="${run#*@}"
    if [[ ! -f "molecule/${scenario}/molecule.yml" ]]; then
        echo "molecule.sh: no scenario '${scenario}' (molecule/${scenario}/molecule.yml)" >&2
        exit 2
    fi
    case "${suite}" in
        bullseye|bookworm|trixie) ;;
        *) echo "molecule.sh: unknown suite '${suite}' in '${run}' (bullseye, bookworm or trixie)" >&2; exit 2 ;;
    esac
    PLAN+=("${scenario}@${suite}")
    SUITES_NEEDED[${suite}]=1
done

declare -A RESULT TIME IMAGE
failed=0
summary=()

# 1. the root file systems that are missing, built side by side (debootstrap mostly waits for the
#    mirror): those of the images that do not exist yet, and all three for the platform tests
"${REPO}/scripts/build-image.sh" --print-name >/dev/null || exit 2   # the test key, before the parallel builds
declare -A ROOTFS_NEEDED=()
for suite in bullseye bookworm trixie; do
    if [[ " ${PLAN[*]} " == *" platforms "* ]]; then
        ROOTFS_NEEDED[${suite}]=1
    elif [[ -n "${SUITES_NEEDED[${suite}]:-}" ]] && \
         ! podman image exists "$("${REPO}/scripts/build-image.sh" --print-name "${suite}")"; then
        ROOTFS_NEEDED[${suite}]=1
    fi
done
if [[ ${#ROOTFS_NEEDED[@]} -gt 0 ]]; then
    LOGS="$(mktemp -d "${TMPDIR:-/tmp}/hostfw-rootfs-logs.XXXXXX")"
    declare -A PIDS
    start=$(date +%s)
    for suite in "${!ROOTFS_NEEDED[@]}"; do
        "${REPO}/scripts/build-image.sh" --rootfs "${suite}" >"${LOGS}/${suite}.log" 2>&1 &
        PIDS[${suite}]=$!
    done
    for suite in bullseye bookworm trixie; do
        [[ -n "${PIDS[${suite}]:-}" ]] || continue
        if wait "${PIDS[${suite}]}"; then status=ok; else status=FAILED; failed=1; tail -n 30 "${LOGS}/${suite}.log" >&2; fi
        grep -E '^rootfs ' "${LOGS}/${suite}.log" >&2 || true
        summary+=("$(printf '  %-22s %-7s %4ss' "rootfs ${suite}" "${status}" "$(( $(date +%s) - start ))")")
    done
    rm -rf "${LOGS}"
fi

# 2. the images (imported from those trees when they do not exist yet)
for suite in bullseye bookworm trixie; do
    [[ -n "${SUITES_NEEDED[${suite}]:-}" ]] || continue
    start=$(date +%s)
    if IMAGE[${suite}]="$("${REPO}/scripts/build-image.sh" "${suite}" | tail -n 1)"; then
        status=ok
    else
        status=FAILED
        failed=1
    fi
    summary+=("$(printf '  %-22s %-7s %4ss  %s' "image ${suite}" "${status}" "$(( $(date +%s) - start ))" "${IMAGE[${suite}]:-}")")
    echo "molecule.sh: image ${suite}: ${IMAGE[${suite}]:-build failed}"
done

for run in "${PLAN[@]}"; do
    start=$(date +%s)
    if [[ "${run}" == platforms ]]; then
        if "${PYTHON}" -m pytest -p no:cacheprovider -q -rA tests/platforms; then RESULT[$run]=ok; else RESULT[$run]=FAILED; failed=1; fi
    else
        scenario="${run%%@*}"
        suite="${run#*@}"
        if [[ -z "${IMAGE[${suite}]:-}" ]]; then
            RESULT[$run]=FAILED
            failed=1
        else
            echo
            echo "==== molecule test -s ${scenario} on ${suite} (${IMAGE[${suite}]})"
            if HOSTFW_TARGET_IMAGE="${IMAGE[${suite}]}" HOSTFW_TARGET_SUITE="${suite}" \
                molecule -c "${BASE_CONFIG}" test -s "${scenario}"; then
                RESULT[$run]=ok
            else
                RESULT[$run]=FAILED
                failed=1
            fi
        fi
    fi
    TIME[$run]=$(( $(date +%s) - start ))
    summary+=("$(printf '  %-22s %-7s %4ss' "${run}" "${RESULT[$run]}" "${TIME[$run]}")")
done

echo
echo "molecule.sh summary"
printf '%s\n' "${summary[@]}"
exit "${failed}"
