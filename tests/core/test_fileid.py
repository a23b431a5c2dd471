"""File identity: one helper, the record shapes stage keys have held since release 0.1.0."""
from __future__ import annotations

import os

import pytest

from vid2vid.core.fileid import FileId, file_id


def test_file_identity_of_a_hand_made_file(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x" * 1234)
    when_ns = 1_700_000_000_987_654_321
    os.utime(f, ns=(when_ns, when_ns))
    link = tmp_path / "link.safetensors"
    link.symlink_to(f)
    fid = file_id(link)
    assert fid == FileId(str(f.resolve()), 1234, 1_700_000_000, when_ns)
    assert fid.record() == {"path": str(f.resolve()), "bytes": 1234, "mtime": 1_700_000_000}
    assert fid.record("model") == {"model": str(f.resolve()), "bytes": 1234, "mtime": 1_700_000_000}
    assert fid.record(ns=True) == {"path": str(f.resolve()), "bytes": 1234, "mtime_ns": when_ns}
    assert str(fid) == f"{f.resolve()}|1234|1700000000"
    f.write_bytes(b"y" * 1234)                      # same size, new time: another version
    os.utime(f, ns=(when_ns + 1, when_ns + 1))
    assert file_id(f) != fid and file_id(f).mtime == fid.mtime
    with pytest.raises(FileNotFoundError):
        file_id(tmp_path / "missing")
