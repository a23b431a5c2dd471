"""A1111 prompt syntax: emphasis weights, prompts longer than 75 tokens, BREAK.

    parse_emphasis("a (red:1.3) [cat]")  ->  [("a ", 1.0), ("red", 1.3), (" ", 1.0), ("cat", 1/1.1)]
    cond = encode_prompt(model, "masterpiece, (1girl:1.2), dancing")      # [1, 77*k, dim]
    cond, uncond = encode_pair(model, prompt, negative)                   # same k for CFG

Emphasis rules (as the A1111 web UI reads prompts): `(x)` multiplies x's weight by 1.1,
`[x]` divides it by 1.1, `(x:1.3)` multiplies by 1.3; brackets nest (weights multiply);
`\\(` `\\)` `\\[` `\\]` `\\\\` are literal characters; a bracket left open applies up to the
end of the prompt; a stray closing bracket is literal text; the word BREAK (capitals) ends
the current 75-token chunk.

Encoding (A1111's rules): each fragment is tokenized on its own, the tokens are cut into
chunks of 75 (a chunk that fills up moves the words after its last comma to the next chunk
when that comma is among the last 20 tokens), each chunk becomes [BOS] + 75 tokens + [EOS]
padded to 77 and is encoded separately; the hidden states are multiplied by the token
weights, then rescaled so the chunk's mean equals its mean before weighting; the chunks are
concatenated along the sequence axis.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

ROUND = 1.1                 # (x) multiplier; [x] divides by it
CHUNK = 75                  # tokens per chunk between BOS and EOS
COMMA_BACKTRACK = 20        # A1111's "comma padding backtrack" default
BREAK = ("BREAK", -1.0)     # marker item in parse_emphasis' output: start a new chunk

_NUMBER = re.compile(r":\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)")
_BREAK = re.compile(r"\s*\bBREAK\b\s*")


def parse_emphasis(text: str) -> list[tuple[str, float]]:
    """A1111 prompt -> [(fragment, weight)], neighbours of equal weight merged; BREAK items are `BREAK`.

    Pure function. An empty prompt gives [("", 1.0)].
    """
    items: list[list] = []          # [text, weight, is_break], weights multiplied in place
    round_open: list[int] = []      # index into items where each open '(' starts
    square_open: list[int] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            parts = _BREAK.split("".join(literal))
            for i, part in enumerate(parts):
                if i:
                    items.append([*BREAK, True])
                if part:
                    items.append([part, 1.0, False])
            literal.clear()

    def scale(start: int, factor: float) -> None:
        for item in items[start:]:
            if not item[2]:
                item[1] *= factor

    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "()[]\\":
            literal.append(text[i + 1])
            i += 2
            continue
        if ch in "([":
            flush()
            (round_open if ch == "(" else square_open).append(len(items))
        elif ch == ":" and round_open and (m := _NUMBER.match(text, i)):
            flush()
            scale(round_open.pop(), float(m.group(1)))
            i = m.end()
            continue
        elif ch == ")" and round_open:
            flush()
            scale(round_open.pop(), ROUND)
        elif ch == "]" and square_open:
            flush()
            scale(square_open.pop(), 1 / ROUND)
        else:
            literal.append(ch)
        i += 1
    flush()
    for start in round_open:
        scale(start, ROUND)
    for start in square_open:
        scale(start, 1 / ROUND)
    return _merged(items)


def _merged(items: list[list]) -> list[tuple[str, float]]:
    """[text, weight, is_break] items -> fragments, neighbours of equal weight joined (never across BREAK)."""
    merged: list[tuple[str, float]] = []
    prev_break = True
    for text_, w, is_break in items:
        if merged and not prev_break and not is_break and merged[-1][1] == w:
            merged[-1] = (merged[-1][0] + text_, w)
        else:
            merged.append(BREAK if is_break else (text_, w))
        prev_break = is_break
    return merged or [("", 1.0)]


# ---------------------------------------------------------------- token chunks

@dataclass
class Chunk:
    """One 75-token chunk before BOS/EOS: token ids and their weights."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def expand_embedding_tokens(text: str, tokenizer) -> str:
    """Write a multi-vector textual inversion token `tok` as `tok tok_1 ... tok_n` (how diffusers stores them)."""
    added = set(tokenizer.get_added_vocab())
    for tok in sorted(added, key=len, reverse=True):
        if f"{tok}_1" not in added:
            continue
        n = 1
        while f"{tok}_{n}" in added:
            n += 1
        full = " ".join([tok] + [f"{tok}_{k}" for k in range(1, n)])
        text = re.sub(rf"(?<![\w]){re.escape(tok)}(?![\w])", full, text)
    return text


def make_chunks(parsed: list[tuple[str, float]], tokenizer, comma_backtrack: int = COMMA_BACKTRACK) -> list[Chunk]:
    """Tokenize each fragment and cut the tokens into chunks of at most CHUNK (A1111's rules)."""
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    chunks: list[Chunk] = []
    cur = Chunk()
    last_comma = -1

    def close() -> None:
        nonlocal cur, last_comma
        chunks.append(cur)
        cur, last_comma = Chunk(), -1

    for text, weight in parsed:
        if (text, weight) == BREAK:     # only the marker: literal "BREAK" words are split out by the parser
            close()
            continue
        ids = tokenizer(expand_embedding_tokens(text, tokenizer), add_special_tokens=False,
                        truncation=False).input_ids
        for tok in ids:
            if tok == comma:
                last_comma = len(cur.tokens)
            elif len(cur.tokens) == CHUNK and comma_backtrack and last_comma != -1 \
                    and len(cur.tokens) - last_comma <= comma_backtrack:
                cut = last_comma + 1
                moved_t, moved_w = cur.tokens[cut:], cur.weights[cut:]
                cur.tokens, cur.weights = cur.tokens[:cut], cur.weights[:cut]
                close()
                cur.tokens, cur.weights = moved_t, moved_w
            if len(cur.tokens) == CHUNK:
                close()
            cur.tokens.append(tok)
            cur.weights.append(weight)
    if cur.tokens or not chunks:
        close()
    return chunks


def chunk_ids(chunk: Chunk, tokenizer) -> tuple[list[int], list[float]]:
    """[BOS] + tokens + [EOS] + padding to CHUNK + 2 ids, with weight 1.0 on the special positions."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    ids = [bos] + chunk.tokens + [eos]
    weights = [1.0] + chunk.weights + [1.0]
    fill = CHUNK + 2 - len(ids)
    return ids + [pad] * fill, weights + [1.0] * fill


def count_chunks(model_or_tokenizer, text: str) -> int:
    """How many 77-token chunks `text` takes (what the UI shows as the token counter's 75, 150, ...)."""
    tok = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    return len(make_chunks(parse_emphasis(text), tok))


# ---------------------------------------------------------------- encoding

def _encode_ids(text_encoder, ids: torch.Tensor, layer: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hidden states [n, 77, dim] of one text encoder: last layer (layer None) or hidden_states[layer]
    (no final layer norm, SDXL's choice); plus the projected pooled output when the encoder has one."""
    out = text_encoder(ids, output_hidden_states=layer is not None)
    hidden = out.last_hidden_state if layer is None else out.hidden_states[layer]
    pooled = getattr(out, "text_embeds", None)
    return hidden, pooled


def _clip_skip_hidden(text_encoder, ids: torch.Tensor, clip_skip: int) -> torch.Tensor:
    """SD 1.x/2.x: last layer (clip_skip 1) or an earlier one through the final layer norm (A1111's CLIP skip)."""
    if clip_skip <= 1:
        return text_encoder(ids).last_hidden_state
    out = text_encoder(ids, output_hidden_states=True)
    norm = getattr(text_encoder, "text_model", text_encoder).final_layer_norm
    return norm(out.hidden_states[-clip_skip])


def apply_emphasis(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """hidden [n, 77, dim] * weights [n, 77], then rescaled so each chunk keeps its mean (A1111).

    Where a chunk's mean is near zero before or after weighting (|mean| below 1e-4 of the mean
    absolute value) the ratio is meaningless, and that chunk is left unscaled.
    """
    if bool((weights == 1).all()):
        return hidden
    h = hidden.float()
    weighted = h * weights[..., None].float()
    before = h.mean(dim=(1, 2), keepdim=True)
    after = weighted.mean(dim=(1, 2), keepdim=True)
    tiny = 1e-4 * h.abs().mean(dim=(1, 2), keepdim=True)
    ok = (before.abs() > tiny) & (after.abs() > tiny)
    ratio = torch.where(ok, before / torch.where(ok, after, torch.ones_like(after)), torch.ones_like(after))
    return (weighted * ratio).to(hidden.dtype)


@torch.no_grad()
def encode_chunks(model, chunks: list[Chunk], clip_skip: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode token chunks -> ([1, 77*k, dim], pooled [1, dim2] for SDXL else None)."""
    tok = model.tokenizer
    rows = [chunk_ids(c, tok) for c in chunks]
    ids = torch.tensor([r[0] for r in rows], device=model.device)
    weights = torch.tensor([r[1] for r in rows], device=model.device)
    pooled = None
    if getattr(model, "text_encoder_2", None) is not None:
        tok2 = model.tokenizer_2
        ids2 = torch.tensor([chunk_ids(Chunk(c.tokens, c.weights), tok2)[0] for c in chunks], device=model.device)
        h1, _ = _encode_ids(model.text_encoder, ids, -2)
        h2, pooled_all = _encode_ids(model.text_encoder_2, ids2, -2)
        hidden = torch.cat([h1, h2], dim=-1)
        assert pooled_all is not None       # SDXL's second text encoder has its projection
        pooled = pooled_all[:1]
    else:
        hidden = _clip_skip_hidden(model.text_encoder, ids, clip_skip)
    hidden = apply_emphasis(hidden, weights.to(hidden.dtype))
    return hidden.reshape(1, -1, hidden.shape[-1]), pooled


def encode_prompt(model, text: str, clip_skip: int = 1) -> torch.Tensor:
    """A1111-style prompt embedding: [1, 77*k, dim] on model.device (k = number of 75-token chunks)."""
    return encode_chunks(model, make_chunks(parse_emphasis(text), model.tokenizer), clip_skip)[0]


def encode_prompt_pooled(model, text: str, clip_skip: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Like encode_prompt, plus SDXL's pooled text embedding [1, 1280] (None for SD 1.x/2.x)."""
    return encode_chunks(model, make_chunks(parse_emphasis(text), model.tokenizer), clip_skip)


def pad_chunks(emb: torch.Tensor, empty: torch.Tensor, k: int) -> torch.Tensor:
    """Append copies of the empty prompt's chunk `empty` [1, 77, dim] until emb has k chunks."""
    have = emb.shape[1] // empty.shape[1]
    if have >= k:
        return emb
    return torch.cat([emb, empty.expand(1, -1, -1).repeat(1, k - have, 1)], dim=1)


def encode_pair(model, prompt: str, negative: str = "", clip_skip: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond), both [1, 77*k, dim] with the same k: the shorter is padded with empty-prompt
    chunks (as A1111 pads the negative prompt for classifier-free guidance)."""
    return encode_pair_pooled(model, prompt, negative, clip_skip)[:2]


def encode_pair_pooled(model, prompt: str, negative: str = "", clip_skip: int = 1):
    """(cond, uncond, pooled cond, pooled uncond): `encode_pair` plus SDXL's pooled embeddings
    [1, dim2] of each prompt (None, None for SD 1.x/2.x)."""
    cond, pooled_c = encode_prompt_pooled(model, prompt, clip_skip)
    uncond, pooled_u = encode_prompt_pooled(model, negative, clip_skip)
    if cond.shape[1] != uncond.shape[1]:
        empty = encode_prompt(model, "", clip_skip)
        k = max(cond.shape[1], uncond.shape[1]) // empty.shape[1]
        cond, uncond = pad_chunks(cond, empty, k), pad_chunks(uncond, empty, k)
    return cond, uncond, pooled_c, pooled_u
