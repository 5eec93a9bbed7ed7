#!/usr/bin/env bash
# Build the local Debian target for the molecule scenarios and the chroot tests of tests/platforms/:
#
#   rootfs  .cache/rootfs/<suite>-<recipe-hash>/   a debootstrap minbase tree
#   image   localhost/hostfw-target:<suite>-<recipe-hash>   that tree imported into podman
#
# A Debian minbase made with debootstrap from Debian's archive (no registry needed), with systemd as
# init, sshd enabled and root login by a test key generated under .cache/ssh/ (never committed).
# Each is built only when nothing with the same recipe hash exists; the rootfs is built once and
# serves both the image and the chroot tests (which only ever use it through an overlay, so it
# stays as debootstrap left it). Older rootfs trees of the same suite are removed.
#
# Usage: scripts/build-image.sh [--print-name | --rootfs] [SUITE]
#   SUITE          bullseye (Debian 11), bookworm (Debian 12, the default) or trixie (Debian 13)
#   --print-name   only print the image name the current recipe maps to
#   --rootfs       build (when needed) and print the rootfs directory only; no podman needed
# The last line of stdout is the image name (or the rootfs directory with --rootfs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REPO}/.cache"
KEY="${CACHE}/ssh/id_ed25519"
PACKAGES="python3,nftables,iproute2,util-linux,systemd,systemd-sysv,openssh-server,procps,sudo"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${REPO}/molecule/containers.conf}"

MODE=image
case "${1:-}" in
    --print-name) MODE=name; shift ;;
    --rootfs) MODE=rootfs; shift ;;
esac
SUITE="${1:-bookworm}"
case "${SUITE}" in
    bullseye|bookworm|trixie) ;;
    *) echo "build-image.sh: unknown suite '${SUITE}' (bullseye, bookworm or trixie)" >&2; exit 2 ;;
esac

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

# Everything that shapes the tree goes into the hash: this script, the suite, the package list and
# the public key that is baked in.
recipe_hash() {
    { cat "${BASH_SOURCE[0]}"; echo "${SUITE} ${PACKAGES}"; cat "${KEY}.pub"; } | sha256sum | cut -c1-12
}

ensure_key
HASH="$(recipe_hash)"
IMAGE="localhost/hostfw-target:${SUITE}-${HASH}"
ROOTFS="${CACHE}/rootfs/${SUITE}-${HASH}"

if [[ "${MODE}" == name ]]; then
    echo "${IMAGE}"
    exit 0
fi

# Remove a half-built tree: first whatever debootstrap still has mounted in it (/proc, /sys), then
# the files, never crossing into another file system.
cleanup_tree() {
    local dir="$1" mnt
    [[ -d "${dir}" ]] || return 0
    findmnt -rn -o TARGET | awk -v d="${dir}/" 'index($0, d) == 1' | sort -r | while read -r mnt; do
        umount -l "${mnt}" || true
    done
    rm -rf --one-file-system "${dir}"
}

build_rootfs() {
    if [[ -f "${ROOTFS}/.hostfw-complete" ]]; then
        echo "rootfs ${ROOTFS} is up to date" >&2
        return 0
    fi
    mkdir -p "${CACHE}/rootfs"
    local tmp
    tmp="$(mktemp -d "${CACHE}/rootfs/.${SUITE}-${HASH}.XXXXXX")"
    chmod 755 "${tmp}"
    # shellcheck disable=SC2064
    trap "cleanup_tree '${tmp}'" EXIT
    echo "debootstrap ${SUITE} into ${tmp} from $(mirror)" >&2
    local start=${SECONDS}
    debootstrap --variant=minbase --include="${PACKAGES}" "${SUITE}" "${tmp}" "$(mirror)" >&2

    # root login by key only
    install -d -m 700 "${tmp}/root/.ssh"
    install -m 600 "${KEY}.pub" "${tmp}/root/.ssh/authorized_keys"
    cat > "${tmp}/etc/ssh/sshd_config.d/hostfw-test.conf" <<'CONF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
CONF
    # sshd on, units that make no sense in a container off
    chroot "${tmp}" systemctl enable ssh.service >&2
    chroot "${tmp}" systemctl mask getty@tty1.service console-getty.service \
        systemd-logind.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
        >/dev/null 2>&1 || true
    : > "${tmp}/etc/machine-id"
    echo hostfw-target > "${tmp}/etc/hostname"
    rm -rf "${tmp}"/var/lib/apt/lists/* "${tmp}"/var/cache/apt/*.bin "${tmp}"/var/cache/apt/archives/*.deb
    # shellcheck disable=SC2016
    {
        echo "suite=${SUITE}"
        echo "nft=$(chroot "${tmp}" dpkg-query -W -f='${Version}' nftables)"
        echo "python3=$(chroot "${tmp}" dpkg-query -W -f='${Version}' python3)"
    } > "${tmp}/.hostfw-complete"

    # older trees of this suite are stale (another recipe); drop them, then publish this one
    local old
    for old in "${CACHE}/rootfs/${SUITE}"-*; do
        [[ -d "${old}" && "${old}" != "${ROOTFS}" ]] && rm -rf "${old}"
    done
    mv "${tmp}" "${ROOTFS}"
    trap - EXIT
    echo "rootfs ${ROOTFS} built in $(( SECONDS - start ))s ($(tr '\n' ' ' < "${ROOTFS}/.hostfw-complete"))" >&2
}

if [[ "${MODE}" == rootfs ]]; then
    build_rootfs
    echo "${ROOTFS}"
    exit 0
fi

if podman image exists "${IMAGE}"; then
    echo "image ${IMAGE} is up to date" >&2
    echo "${IMAGE}"
    exit 0
fi

build_rootfs
tar -C "${ROOTFS}" --exclude=./.hostfw-complete -c . | podman import \
    --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
    - "${IMAGE}" >&2
echo "${IMAGE}"
