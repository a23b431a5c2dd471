"""CLIP BPE tokenizer files made offline: the real CLIP vocabulary and a tiny one for tests.

A CLIP tokenizer folder needs `vocab.json` (token -> id) and `merges.txt` (`#version: 0.2`, then
one merge per line). CLIP's vocabulary is built from its BPE merge list in a fixed order:
the 256 byte symbols, the same symbols with `</w>` (end of word), one entry per merge result,
then `<|startoftext|>` and `<|endoftext|>` (49408 entries for the real list).

The real merge list ships inside the open_clip_torch wheel as `bpe_simple_vocab_16e6.txt.gz`;
it is located through the distribution's file list (importing open_clip would pull torchvision).
"""
from __future__ import annotations

import gzip
import importlib.metadata
import json
from pathlib import Path

from vid2vid.core.errors import ModelNotFound

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
CLIP_MERGES = 49152 - 256 - 2          # merges CLIP uses from the list (vocabulary 49408)
TINY_MERGES = 516                      # tiny vocabulary: 512 + 516 + 2 = 1030 (tiny-sd1 config)

# Words the tiny tokenizer keeps whole, so that test prompts are a few tokens per word.
TINY_WORDS = (
    "a an the of and with in on at by for to is photo picture painting drawing portrait "
    "girl boy man woman cat dog anime style best quality masterpiece detailed high low "
    "blurry ugly bad hands face eyes hair red green blue white black dark light sky "
    "sea city tree flower dance dancing beautiful cute realistic render lowres text "
    "watermark worst jpeg artifacts"
).split()


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes used by GPT-2/CLIP byte-level BPE, in vocabulary order.

    Printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves and come first, in byte
    order; the other 68 bytes follow, in byte order, as chr(256), chr(257), ...
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    rest = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + n) for n in range(len(rest))]


def vocab_from_merges(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's vocabulary order: bytes, bytes + `</w>`, merge results, then BOS and EOS."""
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}


def write_tokenizer(folder: Path, merges: list[tuple[str, str]]) -> Path:
    """Write vocab.json and merges.txt for `merges` into `folder` (atomic per file); return folder."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = vocab_from_merges(merges)
    for name, text in (("vocab.json", json.dumps(vocab, ensure_ascii=False)),
                       ("merges.txt", "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(folder / name)
    return folder


def clip_merges() -> list[tuple[str, str]]:
    """CLIP's 48894 BPE merges, read from open_clip_torch's bundled gzip file (no import of open_clip)."""
    try:
        files = importlib.metadata.files("open_clip_torch") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == "bpe_simple_vocab_16e6.txt.gz":
            path = Path(f.locate())
            if path.is_file():
                lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
                return [tuple(line.split()) for line in lines[1:1 + CLIP_MERGES]]  # type: ignore[misc]
    raise ModelNotFound("CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) was not found; install it with "
                        "`pip install --no-deps open_clip_torch` (it ships the file; its dependencies are not needed)")


def tiny_merges() -> list[tuple[str, str]]:
    """A small deterministic merge list: left-to-right merges spelling TINY_WORDS, then letter pairs."""
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(pair: tuple[str, str]) -> None:
        if pair not in seen and len(merges) < TINY_MERGES:
            seen.add(pair)
            merges.append(pair)

    for word in TINY_WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            add((parts[0], parts[1]))
            parts = [parts[0] + parts[1]] + parts[2:]
    letters = "abcdefghijklmnopqrstuvwxyz"
    for a in letters:
        for b in letters:
            add((a, b))
    return merges
