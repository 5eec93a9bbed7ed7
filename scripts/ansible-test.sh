#!/usr/bin/env bash
# Run ansible-test on this collection.
#
#   scripts/ansible-test.sh sanity --python 3.11
#   scripts/ansible-test.sh units  --python 3.11
#
# Why a wrapper:
# * ansible-test must run from a directory whose REAL path ends in ansible_collections/<ns>/<name>
#   (it resolves the cwd, so the .collections symlink does not satisfy it).  We copy the files git
#   knows about (tracked + untracked-but-not-ignored) to .cache/ansible-test/ansible_collections/hostfw/nftables
#   and run there.  The copy is rebuilt on every run, so deleted files do not linger.
# * ansible-test creates its virtual environments (--venv, and the per-test sanity venvs) by
#   downloading a get-pip script from ci-files.testing.ansible.com, which these machines cannot
#   reach.  It looks in ~/.ansible/test/cache/get_pip_<version>.py first; we put a small
#   stand-in there that bootstraps pip with ensurepip and then installs the requested pip version
#   (and packages) from PyPI.
# * --venv is added unless the caller chose an environment (--local/--venv/--docker/...), so the
#   tools ansible-test needs (pytest-mock, pylint, yamllint...) never touch the pinned .venv.
#   tests/unit/requirements.txt is installed into the units venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
WORK="$ROOT/.cache/ansible-test"
DEST="$WORK/ansible_collections/hostfw/nftables"
ANSIBLE_TEST="${ANSIBLE_TEST:-$VENV/bin/ansible-test}"
PY="$VENV/bin/python"

if [[ ! -x "$ANSIBLE_TEST" ]]; then
    echo "ansible-test.sh: $ANSIBLE_TEST not found; run 'make venv' first" >&2
    exit 2
fi

# --- 1. the pip bootstrap stand-in ----------------------------------------------------------------
# The pip version ansible-test pins for its venvs (python_requirements.get_venv_packages).
PIP_VERSION="$("$PY" - <<'EOF'
import os, re, ansible_test
src = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
m = re.search(r"pip='([0-9.]+)'", open(src).read())
print(m.group(1) if m else "")
EOF
)"
if [[ -z "$PIP_VERSION" ]]; then
    echo "ansible-test.sh: could not find ansible-test's pinned pip version" >&2
    exit 2
fi
CACHE="$HOME/.ansible/test/cache"
GETPIP="$CACHE/get_pip_${PIP_VERSION//./_}.py"
mkdir -p "$CACHE"
cat > "$GETPIP.tmp" <<'EOF'
"""Stand-in for get-pip.py, written by hostfw.nftables scripts/ansible-test.sh.

ansible-test runs: python get_pip.py [pip options] pip==X [packages] --no-setuptools --no-wheel
The real script cannot be downloaded here, so bootstrap pip from the interpreter's bundled wheel
(ensurepip) and let that pip install the exact versions requested, from PyPI.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
EOF
if ! cmp -s "$GETPIP.tmp" "$GETPIP" 2>/dev/null; then
    mv "$GETPIP.tmp" "$GETPIP"
else
    rm -f "$GETPIP.tmp"
fi

# --- 2. the copy at a real ansible_collections/hostfw/nftables path -------------------------------
# Synchronised, not recreated: tests/output (ansible-test's delegation venv and results) survives.
mkdir -p "$DEST"
(
    cd "$ROOT"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard
    else
        # not a git checkout: everything except the usual caches
        find . -path ./.git -prune -o -path ./.venv -prune -o -path ./.cache -prune \
            -o -path ./.collections -prune -o -path ./tests/output -prune \
            -o -type f -print0 | sed -z 's#^\./##'
    fi
) | "$PY" -c '
import filecmp, os, shutil, sys
root, dest = sys.argv[1], sys.argv[2]
wanted = set()
for rel in sys.stdin.buffer.read().split(b"\0"):
    rel = rel.decode()
    if rel and os.path.lexists(os.path.join(root, rel)):  # skip deleted-but-indexed files
        wanted.add(rel)
for rel in sorted(wanted):
    src, dst = os.path.join(root, rel), os.path.join(dest, rel)
    if os.path.islink(src) or os.path.islink(dst) or not os.path.exists(dst) \
            or not filecmp.cmp(src, dst, shallow=False) \
            or os.stat(src).st_mode != os.stat(dst).st_mode:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst):
            os.remove(dst)
        shutil.copy2(src, dst, follow_symlinks=False)
for dirpath, dirnames, filenames in os.walk(dest, topdown=True):
    reldir = os.path.relpath(dirpath, dest)
    if reldir == ".":
        dirnames[:] = [d for d in dirnames if d != ".git"]
    if reldir == "tests":
        dirnames[:] = [d for d in dirnames if d != "output"]
    for f in filenames:
        rel = os.path.normpath(os.path.join(reldir, f))
        if rel not in wanted:
            os.remove(os.path.join(dirpath, f))
for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
    if dirpath != dest and not os.listdir(dirpath) and "/.git" not in dirpath and "tests/output" not in dirpath:
        os.rmdir(dirpath)
' "$ROOT" "$DEST"
# The copy lives inside this checkout's (ignored) .cache/, and ansible-test lists content with git
# from the enclosing repository: make the copy its own (empty) repository so its files are seen.
[[ -d "$DEST/.git" ]] || git -C "$DEST" init -q

# --- 3. run --------------------------------------------------------------------------------------
args=("$@")
have_env=false
for a in "${args[@]}"; do
    case "$a" in
        --local|--venv|--docker|--docker=*|--remote|--remote=*|--controller|--controller=*|--target|--target=*|--target-python|--target-python=*)
            have_env=true ;;
    esac
done
if ! $have_env && [[ ${#args[@]} -gt 0 ]]; then
    args=("${args[0]}" --venv "${args[@]:1}")
fi

cd "$DEST"
# ansible-test finds the collection's dependencies (none) next to it; keep the user's
# ANSIBLE_COLLECTIONS_PATH out of the way so an installed copy of hostfw.nftables is not picked up.
unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
set +e
PATH="$VENV/bin:$PATH" "$ANSIBLE_TEST" "${args[@]}" --color no
rc=$?
set -e
# results (junit, bot, coverage) live in the copy; bring them back (not .tmp: venvs) for CI artifacts
if [[ -d "$DEST/tests/output" ]]; then
    mkdir -p "$ROOT/tests/output"
    for d in "$DEST"/tests/output/*; do
        [[ -e "$d" ]] && cp -a "$d" "$ROOT/tests/output/"
    done
fi
exit $rc
