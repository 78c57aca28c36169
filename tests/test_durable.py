"""
Tests for L{exmta.durable}'s whole-file replacement and write lock, on real
files and, for the lock, a real second process.  The group commit is tested
through the spool (tests/test_queue.py).
"""

import os
import stat
import subprocess
import sys

import pytest

from exmta.durable import locked, replaceFile

# Tries the lock of argv[1] without waiting; exit status 0 if it got it.
TRY_LOCK = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(1)
"""


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def path(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"old\n")
    os.chmod(path, 0o644)
    return str(path)


def test_replaceFileIsPrivateWhateverTheOldModeAndUmask(path):
    previous = os.umask(0)
    try:
        replaceFile(path, b"new\n")
    finally:
        os.umask(previous)
    with open(path, "rb") as handle:
        assert handle.read() == b"new\n"
    assert mode(path) == 0o600
    assert os.listdir(os.path.dirname(path)) == ["file"]


def test_replaceFileKeepsModeAndOwner(path):
    os.chmod(path, 0o640)
    owner = os.stat(path).st_uid, os.stat(path).st_gid
    replaceFile(path, b"new\n", keepModeAndOwner=True)
    with open(path, "rb") as handle:
        assert handle.read() == b"new\n"
    assert mode(path) == 0o640
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == owner


def test_replaceFileThatFailsLeavesTheOldFile(path):
    with pytest.raises(TypeError):
        replaceFile(path, "not bytes")
    with open(path, "rb") as handle:
        assert handle.read() == b"old\n"
    assert os.listdir(os.path.dirname(path)) == ["file"]


def test_replaceFileKeepingTheModeOfNoFile(tmp_path):
    with pytest.raises(FileNotFoundError):
        replaceFile(str(tmp_path / "missing"), b"new\n", keepModeAndOwner=True)
    assert os.listdir(tmp_path) == []


def test_lockedKeepsOtherProcessesOut(path):
    def othersMayLock():
        ran = subprocess.run([sys.executable, "-c", TRY_LOCK, path], timeout=60)
        return ran.returncode == 0

    with locked(path):
        assert not othersMayLock()
        assert mode(path + ".lock") == 0o600
    assert othersMayLock()
