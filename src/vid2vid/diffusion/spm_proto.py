"""The few fields of a sentencepiece model file (`spiece.model`, a protobuf `ModelProto`) a Unigram
tokenizer needs: its pieces with their scores and types, and the normaliser's precompiled character
map. Read and written by hand from the protobuf wire format (varints, length-delimited fields, 32-bit
floats), so neither `sentencepiece` nor `protobuf` is needed; every other field is skipped.

ModelProto: 1 = repeated SentencePiece {1 piece: string, 2 score: float, 3 type: enum (1 normal,
2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)}, 3 = NormalizerSpec {2 precompiled_charsmap}.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

NORMAL, UNKNOWN, CONTROL = 1, 2, 3


@dataclass(frozen=True)
class Piece:
    text: str
    score: float
    kind: int = NORMAL


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of one message; value is an int or bytes."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated field")
        yield number, wire, value


def _piece(data: bytes) -> Piece:
    text, score, kind = "", 0.0, NORMAL
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            text = bytes(value).decode("utf-8")
        elif number == 2 and wire == 5:
            score = struct.unpack("<f", value)[0]
        elif number == 3 and wire == 0:
            kind = int(value)
    return Piece(text, score, kind)


def read_model(data: bytes) -> tuple[list[Piece], bytes]:
    """The pieces (in id order) and the precompiled character map (b"" when none) of a model file."""
    pieces: list[Piece] = []
    charsmap = b""
    for number, wire, value in _fields(bytes(data)):
        if number == 1 and wire == 2:
            pieces.append(_piece(value))
        elif number == 3 and wire == 2:
            charsmap = next((bytes(v) for n, w, v in _fields(value) if n == 2 and w == 2), b"")
    if not pieces:
        raise ValueError("no pieces: not a sentencepiece model")
    return pieces, charsmap


def _key(number: int, wire: int) -> bytes:
    return _write_varint(number << 3 | wire)


def _write_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _write_varint(len(payload)) + payload


def write_model(pieces: list[Piece], charsmap: bytes = b"") -> bytes:
    """A model file holding these pieces (and the character map), in the layout `read_model` reads."""
    out = bytearray()
    for p in pieces:
        body = _delimited(1, p.text.encode("utf-8")) + _key(2, 5) + struct.pack("<f", p.score)
        out += _delimited(1, body + _key(3, 0) + _write_varint(p.kind))
    out += _delimited(3, _delimited(2, charsmap))
    return bytes(out)
