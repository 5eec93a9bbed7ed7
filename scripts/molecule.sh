#!/usr/bin/env bash
# Run the molecule scenarios (default: all) with the locally built target image.
#   scripts/molecule.sh [SCENARIO ...]
# Builds the image when needed (scripts/build-image.sh), points podman at molecule/containers.conf,
# runs `molecule test -s X` for each scenario, prints the wall time of each, and exits non-zero
# if any scenario failed. Needs root, podman, debootstrap, and molecule + pytest-testinfra +
# ansible-core on PATH (the repo's venv).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO}" || exit 2
export CONTAINERS_CONF="${REPO}/molecule/containers.conf"
export MOLECULE_GLOB="molecule/*/molecule.yml"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
BASE_CONFIG="${REPO}/molecule/resources/config.yml"
SCENARIOS=("$@")
if [[ ${#SCENARIOS[@]} -eq 0 ]]; then
    SCENARIOS=(default rollback failsafe coexist staged)
fi

for tool in podman molecule ansible-playbook; do
    if ! command -v "${tool}" >/dev/null; then
        echo "molecule.sh: ${tool} not found on PATH" >&2
        exit 2
    fi
done

# the collection is imported as ansible_collections.hostfw.nftables through this link
LINK="${REPO}/.collections/ansible_collections/hostfw/nftables"
if [[ ! -e "${LINK}" ]]; then
    mkdir -p "$(dirname "${LINK}")"
    ln -s ../../.. "${LINK}"
fi

HOSTFW_TARGET_IMAGE="$("${REPO}/scripts/build-image.sh" | tail -n 1)" || { echo "molecule.sh: image build failed" >&2; exit 2; }
export HOSTFW_TARGET_IMAGE
echo "molecule.sh: image ${HOSTFW_TARGET_IMAGE}"

declare -A RESULT TIME
failed=0
for s in "${SCENARIOS[@]}"; do
    start=$(date +%s)
    if molecule -c "${BASE_CONFIG}" test -s "${s}"; then
        RESULT[$s]=ok
    else
        RESULT[$s]=FAILED
        failed=1
    fi
    TIME[$s]=$(( $(date +%s) - start ))
done

echo
echo "molecule.sh summary"
for s in "${SCENARIOS[@]}"; do
    printf '  %-10s %-7s %4ss\n' "${s}" "${RESULT[$s]}" "${TIME[$s]}"
done
exit "${failed}"
