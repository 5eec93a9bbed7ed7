#!/usr/bin/env bash
# Build the local test image for the molecule scenarios:
#   localhost/hostfw-target:<recipe-hash>
# A Debian bookworm minbase made with debootstrap (no registry needed), with
# systemd as init, sshd enabled and root login by a test key generated under
# .cache/ssh/ (never committed). Skips the build when an image with the same
# recipe hash exists. Prints the image name as the last line of stdout.
#
# Usage: scripts/build-image.sh [--print-name]
#   --print-name   only print the image name the current recipe maps to
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REPO}/.cache"
KEY="${CACHE}/ssh/id_ed25519"
SUITE=bookworm
PACKAGES="python3,nftables,iproute2,systemd,systemd-sysv,openssh-server,procps,sudo"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${REPO}/molecule/containers.conf}"

mirror() {
    if [[ -n "${HOSTFW_DEBIAN_MIRROR:-}" ]]; then echo "${HOSTFW_DEBIAN_MIRROR}"; return; fi
    local m
    m="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    if [[ -z "$m" ]]; then
        m="$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

ensure_key() {
    if [[ ! -s "${KEY}" ]]; then
        mkdir -p "$(dirname "${KEY}")"
        chmod 700 "$(dirname "${KEY}")"
        ssh-keygen -q -t ed25519 -N '' -C hostfw-molecule -f "${KEY}"
    fi
}

# Everything that shapes the image goes into the hash: this script, the package
# list and the public key that is baked in.
recipe_hash() {
    { cat "${BASH_SOURCE[0]}"; echo "${SUITE} ${PACKAGES}"; cat "${KEY}.pub"; } | sha256sum | cut -c1-12
}

ensure_key
IMAGE="localhost/hostfw-target:$(recipe_hash)"

if [[ "${1:-}" == "--print-name" ]]; then
    echo "${IMAGE}"
    exit 0
fi

if podman image exists "${IMAGE}"; then
    echo "image ${IMAGE} is up to date" >&2
    echo "${IMAGE}"
    exit 0
fi

ROOTFS="$(mktemp -d /var/tmp/hostfw-rootfs.XXXXXX)"
trap 'rm -rf "${ROOTFS}"' EXIT
echo "debootstrap ${SUITE} into ${ROOTFS} from $(mirror)" >&2
debootstrap --variant=minbase --include="${PACKAGES}" "${SUITE}" "${ROOTFS}" "$(mirror)" >&2

# root login by key only
install -d -m 700 "${ROOTFS}/root/.ssh"
install -m 600 "${KEY}.pub" "${ROOTFS}/root/.ssh/authorized_keys"
cat > "${ROOTFS}/etc/ssh/sshd_config.d/hostfw-test.conf" <<'CONF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
CONF
# sshd on, units that make no sense in a container off
chroot "${ROOTFS}" systemctl enable ssh.service >&2
chroot "${ROOTFS}" systemctl mask getty@tty1.service console-getty.service \
    systemd-logind.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
    >/dev/null 2>&1 || true
: > "${ROOTFS}/etc/machine-id"
echo hostfw-target > "${ROOTFS}/etc/hostname"
rm -rf "${ROOTFS}"/var/lib/apt/lists/* "${ROOTFS}"/var/cache/apt/*.bin "${ROOTFS}"/var/cache/apt/archives/*.deb

tar -C "${ROOTFS}" -c . | podman import \
    --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
    - "${IMAGE}" >&2
echo "${IMAGE}"
