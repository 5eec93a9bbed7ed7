#!/usr/bin/env bash
# make demo: the lesson's two-node cluster, end to end.
#   1. render: compile the Calico manifests of examples/two-node-cluster into one
#      table inet hostfw per node and the policy matrix (no connection to any host);
#   2. show the matrix;
#   3. prove it: load the rendered files into network namespaces and open a real
#      connection for every cell (needs root, iproute2 and nftables).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${HOSTFW_DEMO_OUT:-$ROOT/out/demo}
INV=$ROOT/examples/two-node-cluster
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.collections
export ANSIBLE_STDOUT_CALLBACK=${ANSIBLE_STDOUT_CALLBACK:-default}
export ANSIBLE_NOCOWS=1

echo "== 1. render: ansible-playbook -i $INV/inventory.yml hostfw.nftables.render -e hostfw_output_dir=$OUT"
ansible-playbook -i "$INV/inventory.yml" hostfw.nftables.render -e "hostfw_output_dir=$OUT"

echo
echo "== 2. the policy matrix ($OUT/matrix.md)"
cat "$OUT/matrix.md"
echo
echo "rendered tables:"; for f in "$OUT"/*.nft; do echo "  $f"; done

echo
echo "== 3. prove the matrix with real connections through the rendered tables"
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
    echo "skipped: needs root with nftables and iproute2 (as root: apt-get install -y nftables iproute2)"
    exit 0
fi
python3 scripts/prove-matrix.py "$OUT" "$INV"

echo
echo "== 4. roll the demo out to local containers over SSH and prove the matrix between them"
scripts/demo-containers.sh "$OUT" "$INV"
