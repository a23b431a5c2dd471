"""Our sentencepiece model reader and writer against protobuf's own parser (transformers' generated module)."""
from __future__ import annotations

import pytest

from vid2vid.diffusion.spm_proto import CONTROL, NORMAL, UNKNOWN, Piece, read_model, write_model

PIECES = [Piece("<pad>", 0.0, CONTROL), Piece("</s>", 0.0, CONTROL), Piece("<unk>", 0.0, UNKNOWN),
          Piece("\u2581cat", -1.5, NORMAL), Piece("\u00e9t\u00e9", -3.25, NORMAL), Piece("\u2581", -7.0, NORMAL)]


def proto_module():
    pytest.importorskip("google.protobuf")
    from transformers.convert_slow_tokenizer import import_protobuf

    return import_protobuf()


def test_reads_what_protobuf_writes():
    pb = proto_module()
    m = pb.ModelProto()
    for p in PIECES:
        m.pieces.add(piece=p.text, score=p.score, type=p.kind)
    m.normalizer_spec.name = "nmt_nfkc"
    m.normalizer_spec.precompiled_charsmap = b"\x00\x01charsmap\xff"
    m.trainer_spec.unk_id = 2                      # a field we skip, before and after ours
    m.trainer_spec.model_type = 1
    assert read_model(m.SerializeToString()) == (PIECES, b"\x00\x01charsmap\xff")


def test_protobuf_reads_what_we_write():
    pb = proto_module()
    m = pb.ModelProto()
    m.ParseFromString(write_model(PIECES, b"map"))
    assert [(p.piece, p.score, p.type) for p in m.pieces] == [(p.text, p.score, p.kind) for p in PIECES]
    assert m.normalizer_spec.precompiled_charsmap == b"map"


def test_bad_bytes_are_refused():
    data = write_model(PIECES)
    with pytest.raises(ValueError):
        read_model(data[:-3] + b"\xff\xff\xff\xff")
    with pytest.raises(ValueError, match="no pieces"):
        read_model(b"")
