#!/usr/bin/env bash
# make demo: the lesson's two-node cluster and Calico's "Protect hosts" page, end to end.
#   1. render: compile the Calico manifests of examples/two-node-cluster into one
#      table inet hostfw per node and the policy matrix (no connection to any host);
#   2. show the matrix; 2b. stage the lesson's next step (examples/two-node-cluster/staged) and show
#      the cells its promotion would change;
#   3. review a change before rollout: the lesson's trap (a source selector all()), as the
#      matrix diff and the lint a pull request reviewer reads;
#   4. render examples/protect-hosts (the page's policy and its narrowed SSH failsafe);
#   5. prove both matrices: load the rendered files into network namespaces and open a real
#      connection for every cell (needs root, iproute2 and nftables);
#   6. roll the two-node cluster out to local containers over SSH and prove it there (podman), then
#      the staged next step with would-deny counters, real connections and the fleet report.
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

if [ -d "$INV/staged" ]; then
    STAGED_VARS='{"hostfw_manifests": ["manifests/*.yaml", "staged/*.yaml"], "hostfw_staged_counters": true}'
    echo
    echo "== 2b. stage the lesson's next step ($INV/staged: a new version of node-host-firewall, staged)"
    echo "   ansible-playbook -i $INV/inventory.yml hostfw.nftables.render -e hostfw_output_dir=$OUT/staged -e '$STAGED_VARS'"
    ansible-playbook -i "$INV/inventory.yml" hostfw.nftables.render -e "hostfw_output_dir=$OUT/staged" \
        -e "$STAGED_VARS" >/dev/null
    echo "   what promoting it would change ($OUT/staged/matrix.md):"
    sed -n '/^| source /,/^$/p; /^## Staged policies/,$p' "$OUT/staged/matrix.md"
fi

echo
echo "== 3. review a change before rollout: the lesson's trap, node-host-firewall's source selector set to all()"
TRAP=$(mktemp -d)
trap 'rm -rf "$TRAP"' EXIT
cp -r "$INV" "$TRAP/inventory"
sed -i "s/^        selector: role == 'node' || has(k8s-app) || tier == 'control-plane'$/        selector: all()/" \
    "$TRAP/inventory/manifests/20-host-firewall.yaml"
grep -q "selector: all()" "$TRAP/inventory/manifests/20-host-firewall.yaml"
echo "ansible-playbook -i <copy>/inventory.yml hostfw.nftables.render -e hostfw_output_dir=$OUT-trap" \
     "-e hostfw_compare_to=$OUT -e hostfw_lint_fail_on=never"
ansible-playbook -i "$TRAP/inventory/inventory.yml" hostfw.nftables.render -e "hostfw_output_dir=$OUT-trap" \
    -e "hostfw_compare_to=$OUT" -e hostfw_lint_fail_on=never >/dev/null
echo "-- $OUT-trap/matrix-diff.md (what the change opens and closes):"
cat "$OUT-trap/matrix-diff.md"
echo "-- $OUT-trap/lint.md (the default hostfw_lint_fail_on: error would have failed this render):"
cat "$OUT-trap/lint.md"

PH_INV=$ROOT/examples/protect-hosts
PH_OUT=$OUT-protect-hosts
echo
echo "== 4. Calico's \"Protect hosts\" page: ansible-playbook -i $PH_INV/inventory.yml hostfw.nftables.render" \
     "-e hostfw_output_dir=$PH_OUT"
ansible-playbook -i "$PH_INV/inventory.yml" hostfw.nftables.render -e "hostfw_output_dir=$PH_OUT" >/dev/null
cat "$PH_OUT/matrix.md"
echo "(examples/protect-hosts/README.md reads this matrix: the default SSH failsafe is open from elsewhere on"
echo " my-host; the narrowed one on my-hardened-host only from the management subnet)"

echo
echo "== 5. prove both matrices with real connections through the rendered tables"
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
    echo "skipped: needs root with nftables and iproute2 (as root: apt-get install -y nftables iproute2)"
    exit 0
fi
python3 scripts/prove-matrix.py "$OUT" "$INV"
python3 scripts/prove-matrix.py "$PH_OUT" "$PH_INV"

echo
echo "== 6. roll the demo out to local containers over SSH and prove the matrix between them"
scripts/demo-containers.sh "$OUT" "$INV"
