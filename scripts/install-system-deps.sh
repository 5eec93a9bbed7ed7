#!/usr/bin/env bash
# Install the Debian 12 packages the test suite and the demo need, when any is missing.
#
#   scripts/install-system-deps.sh           install what is missing (root)
#   scripts/install-system-deps.sh --check   list what is missing; exit 1 if anything is
#
# nftables/iproute2: dataplane tests (network namespaces, nft -f)
# podman/runc/debootstrap: molecule's container driver and the locally built Debian images
#   (no container registry is reachable: images are built with debootstrap from Debian's mirror)
# debian-archive-keyring: debootstrap checks bullseye, bookworm and trixie (Debian 11-13, molecule and
#   tests/platforms) with it; util-linux (unshare, mount) and overlayfs serve the chroot tests
# openssh-client/sshpass: molecule scenarios that reach containers over SSH (rollback)
# python3-venv: `make venv`;  git, make: the repo's own tooling
# (shellcheck) the shellcheck test of `ansible-test sanity` (skipped without it)
# chromium/chromium-driver: the browser test of matrix.html (tests/integration/test_matrix_html.py)
set -euo pipefail

PACKAGES=(
    nftables
    iproute2
    podman
    runc
    debootstrap
    debian-archive-keyring
    openssh-client
    sshpass
    python3-venv
    procps
    git
    shellcheck
    make
    ca-certificates
    chromium
    chromium-driver
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [[ "${1:-}" == "--check" ]]; then
    if ((${#missing[@]})); then
        echo "${missing[*]}"
        exit 1
    fi
    exit 0
fi

if ((${#missing[@]} == 0)); then
    echo "install-system-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-system-deps: missing packages: ${missing[*]}" >&2
    echo "install-system-deps: run as root (or: sudo $0)" >&2
    exit 1
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${missing[@]}"
