# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state directory trusts nothing that someone else could have written (issue 14, item 4 and 7):
a private directory (owner euid, 0700, no symlink) under directories nobody else can write, files
opened without following symlinks or blocking, atomic writes, sha256 checks, pruning."""

import errno
import hashlib
import os
import stat
import threading

import pytest

from ansible_collections.hostfw.nftables.plugins.module_utils import _nft_state
from ansible_collections.hostfw.nftables.plugins.module_utils._nft_state import StateDir, StateError

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another user")


def _private_base(tmp_path):
    base = tmp_path / "base"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    return base


def test_ensure_creates_a_private_directory(tmp_path):
    state = StateDir(str(_private_base(tmp_path) / "run"))
    old = os.umask(0o777)  # even a umask that removes the owner's bits
    try:
        state.ensure()
    finally:
        os.umask(old)
    st = os.lstat(state.root)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    state.ensure()  # an existing private directory is fine


def test_symlinked_state_dir_is_refused(tmp_path):
    base = _private_base(tmp_path)
    (base / "elsewhere").mkdir(mode=0o700)
    (base / "run").symlink_to(base / "elsewhere")
    with pytest.raises(StateError) as err:
        StateDir(str(base / "run")).ensure()
    assert str(err.value) == ("the state directory %s is a symlink; hostfw.nftables does not follow it (fix: rm %s, the "
                              "module creates the directory, or set state_dir to a real directory)"
                              % (base / "run", base / "run"))


def test_group_or_world_accessible_state_dir_is_refused(tmp_path):
    base = _private_base(tmp_path)
    (base / "run").mkdir()
    (base / "run").chmod(0o755)
    with pytest.raises(StateError) as err:
        StateDir(str(base / "run")).ensure()
    assert str(err.value) == ("the state directory %s has mode 0755: it must be 0700, readable and writable by its "
                              "owner only (fix: chmod 0700 %s)" % (base / "run", base / "run"))


@root_only
def test_state_dir_created_by_someone_else_is_refused(tmp_path):
    """The race on first creation: someone creates the directory between our check and our mkdir
    (EEXIST), or before: it is refused unless it passes the checks."""
    base = _private_base(tmp_path)
    planted = base / "run"
    planted.mkdir(mode=0o700)
    os.chown(str(planted), NOBODY, NOBODY)
    with pytest.raises(StateError) as err:
        StateDir(str(planted)).ensure()
    assert str(err.value) == ("the state directory %s is owned by uid %d, not by uid 0 that runs the module: someone "
                              "else created it (fix: inspect it, then rm -r %s; the module creates it again)"
                              % (planted, NOBODY, planted))


@root_only
def test_mkdir_race_eexist_is_checked(tmp_path, monkeypatch):
    base = _private_base(tmp_path)
    target = base / "run"
    real_mkdir = os.mkdir

    def racing_mkdir(path, mode=0o777):
        if path == str(target):  # the attacker wins the race
            real_mkdir(path, 0o700)
            os.chown(path, NOBODY, NOBODY)
            raise OSError(errno.EEXIST, "File exists", path)
        return real_mkdir(path, mode)

    monkeypatch.setattr(_nft_state.os, "mkdir", racing_mkdir)
    with pytest.raises(StateError) as err:
        StateDir(str(target)).ensure()
    assert "is owned by uid %d" % NOBODY in str(err.value)


def test_parent_writable_by_others_is_refused_unless_sticky(tmp_path):
    base = _private_base(tmp_path)
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StateError) as err:
        StateDir(str(shared / "run")).ensure()
    assert str(err.value) == ("%s (above %s) is writable by others (mode 0777), who could replace it (fix: chmod go-w "
                              "%s, or choose another path)" % (shared, shared / "run", shared))
    assert not (shared / "run").exists(), "nothing is created under an unsafe parent"
    shared.chmod(0o1777)  # like /tmp: others cannot rename or remove our entries
    StateDir(str(shared / "run")).ensure()


@root_only
def test_parent_owned_by_another_user_is_refused(tmp_path):
    base = _private_base(tmp_path)
    theirs = base / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(str(theirs), NOBODY, NOBODY)
    with pytest.raises(StateError) as err:
        StateDir(str(theirs / "run")).ensure()
    assert str(err.value).startswith("%s (above %s) is owned by uid %d" % (theirs, theirs / "run", NOBODY))


def test_reads_do_not_follow_symlinks_or_block_on_fifos(tmp_path):
    state = StateDir(str(_private_base(tmp_path) / "run"))
    state.ensure()
    secret = tmp_path / "secret"
    secret.write_text('{"id": "from a symlink"}')
    os.symlink(str(secret), state.path("armed.json"))
    assert state.read_json("armed.json") is None
    os.mkfifo(state.path("stage.json"))
    done = []
    reader = threading.Thread(target=lambda: done.append(state.read_json("stage.json")))
    reader.start()
    reader.join(5)
    assert done == [None], "reading a FIFO must neither block nor succeed"
    with pytest.raises(StateError) as err:
        state.read_bytes("stage.json")
    assert str(err.value) == "%s is not a regular file (fix: remove it)" % state.path("stage.json")
    assert _nft_state.read_text("/dev/zero") is None


def test_write_is_atomic_private_and_vetoable(tmp_path):
    state = StateDir(str(_private_base(tmp_path) / "run"))
    sha = state.write("candidate.nft", "one\n")
    assert sha == hashlib.sha256(b"one\n").hexdigest()
    assert stat.S_IMODE(os.stat(state.path("candidate.nft")).st_mode) == 0o600

    def veto(tmp, digest):
        assert open(tmp).read() == "two\n" and digest == hashlib.sha256(b"two\n").hexdigest()
        raise RuntimeError("nft -c rejects it")

    with pytest.raises(RuntimeError):
        _nft_state.write_file_atomic(state.path("candidate.nft"), "two\n", 0o600, verify=veto)
    assert open(state.path("candidate.nft")).read() == "one\n", "a vetoed write keeps the old file"
    assert sorted(os.listdir(state.root)) == ["candidate.nft"], "no temporary file is left behind"
    # a symlink planted under the name is replaced, its target untouched
    target = tmp_path / "target"
    target.write_text("keep\n")
    os.unlink(state.path("candidate.nft"))
    os.symlink(str(target), state.path("candidate.nft"))
    state.write("candidate.nft", "three\n")
    assert target.read_text() == "keep\n" and not os.path.islink(state.path("candidate.nft"))


def test_verify_names_the_swapped_file(tmp_path):
    state = StateDir(str(_private_base(tmp_path) / "run"))
    sha = state.write("candidate.nft", "table inet hostfw\n")
    assert state.verify("candidate.nft", sha, "staged candidate") == state.path("candidate.nft")
    with open(state.path("candidate.nft"), "a") as handle:
        handle.write("table ip evil {\n}\n")
    with pytest.raises(StateError) as err:
        state.verify("candidate.nft", sha, "staged candidate")
    assert str(err.value).startswith("the staged candidate %s changed after hostfw.nftables wrote it (sha256 "
                                     % state.path("candidate.nft"))
    assert str(err.value).endswith("written %s): something else writes to its directory; it is not loaded (fix: find "
                                   "out what changed it, then stage again)" % sha)
    with pytest.raises(StateError) as err:
        state.verify("candidate.nft", None, "staged candidate")
    assert "no sha256 is recorded" in str(err.value)


def test_prune_keeps_the_newest_five_and_the_active(tmp_path):
    state = StateDir(str(_private_base(tmp_path) / "run"))
    ids = ["20260101T0000%02d-abcd" % i for i in range(9)]
    for rid in ids:
        state.write("disarmed-%s" % rid, "1\n")
        state.write("rolled-back-%s.json" % rid, "{}\n")
    state.write("rollback-%s.nft" % ids[0], "x\n")
    state.write("stage.json", "{}\n")
    assert state.prune(active=ids[0]) == ids[1:5]
    left = sorted(os.listdir(state.root))
    assert "stage.json" in left and "rollback-%s.nft" % ids[0] in left
    assert sorted({n.split("-", 1)[1] for n in left if n.startswith("disarmed-")}) == [ids[0]] + ids[5:]


def test_os_error_messages_name_the_path_and_the_fix():
    exc = OSError(errno.EROFS, "Read-only file system", "/etc/hostfw/.hostfw-x")
    assert _nft_state.os_error_message(exc, "write", "/etc/hostfw/hostfw.nft") == (
        "cannot write /etc/hostfw/hostfw.nft: Read-only file system (the file system is mounted read-only: remount it "
        "read-write or choose a path on a writable file system)")
