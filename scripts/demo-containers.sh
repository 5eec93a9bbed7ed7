#!/usr/bin/env bash
# make demo, step 4: the two-node cluster on real (container) hosts.
#
#   scripts/demo-containers.sh [OUT_DIR [INVENTORY_DIR]]   (scripts/demo.sh calls it after steps 1-3)
#
#   a. build the target image (scripts/build-image.sh: Debian with systemd, sshd, nftables);
#   b. start the nodes of the inventory (examples/two-node-cluster: policy-llm-control-plane
#      172.18.0.2, policy-llm-worker 172.18.0.3) as containers with their inventory addresses on an
#      own podman network 172.18.0.0/24, and a container "pods" that holds the addresses of the
#      other matrix sources (the WorkloadEndpoints 10.244.x.x, network sets); the nodes route those
#      networks to it. A source inside 172.18.0.0/24 (a management subnet) is the controller itself
#      (172.18.0.1, the network's gateway);
#   c. run the real rollout over SSH:
#        ansible-playbook -i examples/two-node-cluster/inventory.yml hostfw.nftables.rollout
#      (connection settings come from an extra-vars file; the example's policy is not changed);
#   d. prove every cell of out/demo/matrix.json with a real connection between the containers
#      (compiled verdict vs the kernel's), failing on any mismatch;
#   e. run the rollout again: it must report changed=0;
#   g. with INVENTORY_DIR/staged (the lesson's next step as a StagedGlobalNetworkPolicy): roll out with
#      it and hostfw_staged_counters (the enforced policy is unchanged, the tables get the shadow path),
#      make real connections, run the fleet report (hostfw.nftables.report) and print report.md;
#   f. remove the containers and the network (HOSTFW_DEMO_KEEP=1 keeps them for a look around).
#
# Needs root and podman (runc, and debootstrap for the first image build). Without them it says what
# to install and exits 0. Uses molecule/containers.conf (runc, no ulimits), like the molecule tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-${HOSTFW_DEMO_OUT:-$ROOT/out/demo}}
INV=${2:-$ROOT/examples/two-node-cluster}
NET=${HOSTFW_DEMO_NETWORK:-hostfw-demo}
SUBNET=172.18.0.0/24
GATEWAY=172.18.0.1
PODS=pods
PODS_IP=172.18.0.4
KEY=$ROOT/.cache/ssh/id_ed25519
STATE=$OUT/containers
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.collections
export ANSIBLE_STDOUT_CALLBACK=${ANSIBLE_STDOUT_CALLBACK:-default}
export ANSIBLE_NOCOWS=1 ANSIBLE_PIPELINING=1 ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_DISPLAY_SKIPPED_HOSTS=0
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/molecule/containers.conf}

# --- what this step needs --------------------------------------------------------------------
missing=()
[ "$(id -u)" = 0 ] || missing+=("root")
for tool in podman runc; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -eq 0 ] && ! podman image exists "$(scripts/build-image.sh --print-name 2>/dev/null)" \
        && ! command -v debootstrap >/dev/null 2>&1; then
    missing+=("debootstrap (to build the image)")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "skipped: this step needs ${missing[*]}."
    echo "  As root on Debian/Ubuntu: apt-get install -y podman runc debootstrap"
    echo "  then run: make demo   (or scripts/demo-containers.sh)"
    exit 0
fi
if [ ! -f "$OUT/matrix.json" ]; then
    echo "-- $OUT/matrix.json is missing: rendering it first"
    ansible-playbook -i "$INV/inventory.yml" hostfw.nftables.render -e "hostfw_output_dir=$OUT" >/dev/null
fi
mkdir -p "$STATE"

# The plan (node containers, pod addresses, routes, listeners) from the inventory and the matrix.
ansible-inventory -i "$INV/inventory.yml" --list > "$STATE/inventory.json"
python3 - "$OUT/matrix.json" "$STATE/inventory.json" "$SUBNET" > "$STATE/plan.sh" <<'PY'
import ipaddress
import json
import sys

matrix = json.load(open(sys.argv[1]))
inv = json.load(open(sys.argv[2]))
subnet = ipaddress.ip_network(sys.argv[3])
nodes = {}
for name, hv in sorted(inv.get("_meta", {}).get("hostvars", {}).items()):
    ip = hv.get("ansible_host")
    if ip and ipaddress.ip_address(ip) in subnet:
        nodes[name] = ip
node_ips = set(nodes.values())
# every other matrix source lives on the pods container, except an address of the podman network
# itself (a source network set holding it, like a management subnet): its probes start on the
# controller, whose address there is the gateway
pod_ips = sorted({e["ips"][0].split("/")[0] for e in matrix["endpoints"]
                  if e.get("ips") and e["ips"][0].split("/")[0] not in node_ips
                  and ipaddress.ip_address(e["ips"][0].split("/")[0]) not in subnet},
                 key=ipaddress.ip_address)
routes = sorted({str(ipaddress.ip_network(ip + "/16", strict=False)) for ip in pod_ips})
ports = sorted({p["port"] for p in matrix["probes"] if p["protocol"] == "TCP" and p["port"] != 22})
print("NODES=(%s)" % " ".join("%s=%s" % kv for kv in sorted(nodes.items())))
print("POD_IPS=(%s)" % " ".join(pod_ips))
print("POD_ROUTES=(%s)" % " ".join(routes))
print("LISTEN_PORTS=(%s)" % " ".join(str(p) for p in ports))
PY
NODES=() POD_IPS=() POD_ROUTES=() LISTEN_PORTS=()
# shellcheck source=/dev/null
. "$STATE/plan.sh"
if [ ${#NODES[@]} -eq 0 ]; then
    echo "no inventory host of $INV has an ansible_host in $SUBNET: nothing to start" >&2
    exit 1
fi

# --- a. image --------------------------------------------------------------------------------
echo "-- a. image: scripts/build-image.sh"
IMAGE=$(scripts/build-image.sh | tail -n 1)
echo "   $IMAGE"

# --- b. containers ---------------------------------------------------------------------------
CONTAINERS=("${PODS}")
for n in "${NODES[@]}"; do CONTAINERS+=("${n%%=*}"); done
cleanup() {
    local rc=$?
    if [ "${HOSTFW_DEMO_KEEP:-0}" = 1 ]; then
        echo "-- kept (HOSTFW_DEMO_KEEP=1): containers ${CONTAINERS[*]}, network $NET;" \
             "remove with: podman rm -f ${CONTAINERS[*]}; podman network rm $NET"
        return "$rc"
    fi
    echo "-- f. clean up: podman rm -f ${CONTAINERS[*]}; podman network rm $NET"
    podman rm --force --time 2 "${CONTAINERS[@]}" >/dev/null 2>&1 || true
    podman network rm --force "$NET" >/dev/null 2>&1 || true
    return "$rc"
}
trap cleanup EXIT
# leftovers of an interrupted run
podman rm --force --time 2 "${CONTAINERS[@]}" >/dev/null 2>&1 || true
podman network rm --force "$NET" >/dev/null 2>&1 || true

# podman run with runc prints "failed to connect to syslog" here (no syslog in this environment): drop that line
podman_run() { podman run "$@" 2> >(grep -v 'failed to connect to syslog' >&2); }

echo "-- b. podman network $NET ($SUBNET, the controller is $GATEWAY) and containers"
if ! err=$(podman network create --subnet "$SUBNET" --gateway "$GATEWAY" "$NET" 2>&1 >/dev/null); then
    echo "$err" >&2
    exit 1
fi
for n in "${NODES[@]}"; do
    name=${n%%=*} ip=${n#*=}
    podman_run --detach --replace --name "$name" --hostname "$name" --network "$NET" --ip "$ip" \
        --systemd=always --cap-add=NET_ADMIN --cap-add=NET_RAW "$IMAGE" /sbin/init >/dev/null
    echo "   node $name  $ip  (systemd, sshd, nftables; NET_ADMIN)"
done
podman_run --detach --replace --name "$PODS" --hostname "$PODS" --network "$NET" --ip "$PODS_IP" \
    --cap-add=NET_ADMIN "$IMAGE" sleep infinity >/dev/null
for ip in "${POD_IPS[@]}"; do podman exec "$PODS" ip addr add "$ip/32" dev eth0; done
echo "   pods $PODS_IP  + pod addresses ${POD_IPS[*]}"

for n in "${NODES[@]}"; do
    name=${n%%=*}
    podman exec "$name" systemctl is-system-running --wait >/dev/null || true
    for route in "${POD_ROUTES[@]}"; do podman exec "$name" ip route replace "$route" via "$PODS_IP"; done
    for port in "${LISTEN_PORTS[@]}"; do
        podman exec "$name" systemd-run --quiet --unit "hostfw-demo-listen-$port" --property=Restart=always \
            python3 -m http.server --bind 0.0.0.0 "$port" >/dev/null
    done
done
echo "   routes on the nodes: ${POD_ROUTES[*]} via $PODS_IP (on a real cluster the CNI routes the pod network;"
echo "   here it makes a node's answer to a pod go back to the pods container)"
echo "   listeners on the nodes: TCP 22 (sshd)${LISTEN_PORTS[*]:+, TCP ${LISTEN_PORTS[*]} (python3 -m http.server)}"
for n in "${NODES[@]}"; do
    ip=${n#*=}
    for _ in $(seq 1 60); do
        if timeout 2 bash -c "exec 3<>/dev/tcp/$ip/22" 2>/dev/null; then break; fi
        sleep 1
    done
done

# --- c. rollout over SSH ---------------------------------------------------------------------
cat > "$STATE/connection.json" <<JSON
{"ansible_user": "root",
 "ansible_ssh_private_key_file": "$KEY",
 "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
 "ansible_python_interpreter": "/usr/bin/python3"}
JSON
ROLLOUT=(ansible-playbook -i "$INV/inventory.yml" hostfw.nftables.rollout -e "@$STATE/connection.json")
echo "-- c. rollout: ${ROLLOUT[*]}"
echo "      ($STATE/connection.json: SSH as root with the test key; the inventory and its policy are unchanged)"
"${ROLLOUT[@]}" | tee "$STATE/rollout-1.log"

# --- d. prove the matrix ---------------------------------------------------------------------
echo "-- d. prove $OUT/matrix.json with real connections between the containers"
python3 - "$OUT/matrix.json" "$STATE/plan.sh" "$PODS" "$GATEWAY" <<'PY'
import concurrent.futures
import json
import subprocess
import sys

matrix = json.load(open(sys.argv[1]))
plan = {}
for line in open(sys.argv[2]):
    key, _sep, value = line.strip().partition("=")
    plan[key] = value.strip("()").split()
node_of_ip = {kv.split("=")[1]: kv.split("=")[0] for kv in plan["NODES"]}
pods = sys.argv[3]
gateway = sys.argv[4]  # the controller's own address on the podman network
eps = {e["name"]: e for e in matrix["endpoints"]}
PROBE = ("import socket,sys\n"
         "s=socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))\n"
         "try:\n    s.connect((sys.argv[2], int(sys.argv[3]))); print('allow')\n"
         "except socket.timeout:\n    print('deny')\n"
         "except OSError as e:\n    print('error:%s' % e.strerror)\n")


def probe(cell):
    src = eps[cell["source"]]["ips"][0].split("/")[0]
    dst = eps[cell["destination"]]["ips"][0].split("/")[0]
    if cell["protocol"] != "TCP":
        return src, dst, "-", "untested (%s)" % cell["protocol"]
    if "workload to host:" in cell["reason"]:
        # a pod to its own host enters through its cali veth, which these containers do not have
        # (the pods container reaches the nodes over the podman network); step 5 proves these cells
        return src, dst, "-", "local"
    container = "controller" if src == gateway else node_of_ip.get(src, pods)
    run = [] if src == gateway else ["podman", "exec", container]
    out = subprocess.run(run + ["python3", "-c", PROBE, src, dst, str(cell["port"])],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    return src, dst, container, (out.stdout.strip().splitlines() or ["error:no output"])[-1]


cells = matrix["cells"]
with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    results = list(pool.map(probe, cells))
rows = [("source", "from", "destination", "probe", "compiled", "kernel", "reason")]
bad = 0
local = 0
for cell, (src, dst, container, kernel) in zip(cells, results):
    if kernel == "local":
        local += 1
        rows.append((cell["source"], "(its own host)", cell["destination"], "%s/%s" % (cell["protocol"], cell["port"]),
                     cell["verdict"], "not here", cell["reason"] + " (a pod to its own host: proven in step 5's namespaces)"))
        continue
    ok = kernel == cell["verdict"]
    bad += not ok
    rows.append((cell["source"], "%s (%s)" % (container, src), "%s (%s)" % (cell["destination"], dst),
                 "%s/%s" % (cell["protocol"], cell["port"]), cell["verdict"],
                 kernel + ("" if ok else "  <-- MISMATCH"), cell["reason"]))
widths = [max(len(r[i]) for r in rows) for i in range(6)]
for r in rows:
    print("  " + "  ".join(r[i].ljust(widths[i]) for i in range(6)) + "  " + r[6])
print()
if bad:
    print("%d of %d cells differ between the compiled matrix and the kernels of the node containers" % (bad, len(cells)))
    sys.exit(1)
print("all %d cells proven with real connections between the containers (rolled out over SSH)%s" % (
    len(cells) - local, "; %d cell(s) of pods to their own host are proven in network namespaces instead" % local
    if local else ""))
PY

# --- e. second rollout: nothing to change ----------------------------------------------------
echo "-- e. the same rollout again: nothing may change"
"${ROLLOUT[@]}" > "$STATE/rollout-2.log" 2>&1 || { cat "$STATE/rollout-2.log"; exit 1; }
sed -n '/^PLAY RECAP/,$p' "$STATE/rollout-2.log"
recap=$(grep -E '^[^ ].* : ok=' "$STATE/rollout-2.log" || true)
if [ -z "$recap" ] || grep -qv 'changed=0 ' <<<"$recap"; then
    echo "the second rollout changed something (see $STATE/rollout-2.log)" >&2
    exit 1
fi
echo "   second rollout: changed=0 on every host"

# --- g. the lesson's next step, staged: what would it do to live traffic? --------------------
if [ -d "$INV/staged" ]; then
    STAGED_OUT=$OUT/staged
    STAGED_VARS='{"hostfw_manifests": ["manifests/*.yaml", "staged/*.yaml"], "hostfw_staged_counters": true}'
    echo "-- g. stage the next step ($INV/staged) and count what it would deny on live traffic"
    echo "   rollout with -e '$STAGED_VARS':"
    echo "   the enforced policy is unchanged; each node's table gets the shadow path (counters only)"
    "${ROLLOUT[@]}" -e "$STAGED_VARS" > "$STATE/rollout-staged.log" 2>&1 || { cat "$STATE/rollout-staged.log"; exit 1; }
    grep -E 'hostfw: WARNING' "$STATE/rollout-staged.log" | sed 's/^ */   /' || true
    sed -n '/^PLAY RECAP/,$p' "$STATE/rollout-staged.log"
    CONNECTIONS=10
    echo "   traffic: $CONNECTIONS new connections from calico-system/calico-node (10.244.0.10) and from"
    echo "   kube-system/kube-apiserver (10.244.0.20) to TCP 10250 of every node (all allowed today)"
    for n in "${NODES[@]}"; do
        for src in 10.244.0.10 10.244.0.20; do
            podman exec "$PODS" python3 -c '
import socket, sys
ok = 0
for _ in range(int(sys.argv[3])):
    s = socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))
    s.connect((sys.argv[2], 10250)); s.close(); ok += 1
print("     %s -> %s:10250: %d of %s connected" % (sys.argv[1], sys.argv[2], ok, sys.argv[3]))
' "$src" "${n#*=}" "$CONNECTIONS"
        done
    done
    REPORT=(ansible-playbook -i "$INV/inventory.yml" hostfw.nftables.report -e "hostfw_output_dir=$STAGED_OUT"
            -e "@$STATE/connection.json" -e "$STAGED_VARS")
    echo "   report: ${REPORT[*]}"
    "${REPORT[@]}" > "$STATE/report.log" 2>&1 || { cat "$STATE/report.log"; exit 1; }
    echo
    cat "$STAGED_OUT/report.md"
    echo
fi
echo "-- step 4 took ${SECONDS}s (cleanup follows)"
