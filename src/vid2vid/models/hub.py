"""Getting model files from the Hugging Face hub, with errors that say how to get them instead.

Used by the depth models (`vid2vid.models.depth`) and the taggers. Weights are only fetched on a
user's machine, into the usual hub cache; with `HF_HUB_OFFLINE=1` (or `local_files_only=True`)
only the cache is read. Whatever goes wrong (not cached, no network, repository or file gone)
becomes one `ModelNotFound` naming the repository, the download command and the local-folder
alternative.

Without a network the hub client retries each request for about 23 s (a depth model makes
several): `offline_reason` first tries one TCP connection to the hub endpoint (a few seconds at
most, remembered for a minute), and when it fails, only the cache is read, so an uncached model
fails at once with the usual message. Downloads report bytes, rate and time left through
`byte_progress`: single files (taggers) as `hf_hub_download` fetches them, whole models (depth
models, Stable Diffusion hub ids) by `prefetch`, which downloads the files the library will read
(`load_files`, `diffusers_files`) into the cache before it loads them from there.
"""
from __future__ import annotations

import io
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from vid2vid.core.errors import ModelNotFound

REACH_TIMEOUT = 3.0        # seconds for the one connection that tells whether the hub can be reached
REACH_MEMORY = 60.0        # seconds a reachability answer is reused
_reach: dict[str, tuple[float, str | None]] = {}


def hub_unreachable(endpoint: str | None = None, timeout: float = REACH_TIMEOUT) -> str | None:
    """None when a TCP connection to the hub endpoint opens within `timeout`, else why not."""
    from huggingface_hub import constants

    url = urlparse(endpoint or constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    now = time.monotonic()
    cached = _reach.get(f"{host}:{port}")
    if cached and now - cached[0] < REACH_MEMORY:
        return cached[1]
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        why = None
    except OSError as exc:
        why = f"no network: {host} cannot be reached ({exc.strerror or exc})"
    _reach[f"{host}:{port}"] = (now, why)
    return why


def offline_reason(local_files_only: bool | None = None) -> str | None:
    """Why only the local cache may be read (HF_HUB_OFFLINE, the caller, no network), or None: the one
    rule every hub loader follows, so that no loader waits on retries where the network is absent."""
    from huggingface_hub import constants

    if local_files_only:
        return "only the local cache was asked for"
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return hub_unreachable()


def download_hint(repo_id: str, what: str, files: str = ".safetensors file") -> str:
    """The fix for a hub id that cannot be had here: download it elsewhere, or give a local copy."""
    return (f"download it on a machine with internet (`hf download {repo_id}`), or pass {what} as a local "
            f"folder or {files}")


def byte_progress(report: Callable, label: str):
    """A tqdm class for the hub client's `tqdm_class` that draws nothing itself and sends each update
    to `report` as a ProgressEvent counted in bytes (the console shows MB, MB/s and time left).

    `hf_hub_download` makes one bar of bytes; `snapshot_download` makes two (bytes received, bytes
    written; their totals grow as files start) and one of files. The bars of one class count
    together: an event carries the largest byte count and total of the byte bars; while the bar of
    files is not full, the total stays above the count (a file may not have started yet), and the
    last file's end sends the closing event. `report` may raise (a cancelled job) to stop the download."""
    from tqdm.auto import tqdm

    from vid2vid.core.progress import ProgressEvent

    began: list[float] = []
    byte_bars: list[tqdm] = []
    file_bars: list[tqdm] = []

    def send() -> None:
        done = max(int(b.n) for b in byte_bars)
        total = max([int(b.total or 0) for b in byte_bars] + [done])
        if any(f.n < (f.total or 0) for f in file_bars):
            total = max(total, done + 1)
        report(ProgressEvent(f"download {label}", done, total, time.monotonic() - began[0], unit="bytes"))

    class ByteProgress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False           # the hub's bars may be off globally; this one reports
            kwargs["file"] = io.StringIO()
            super().__init__(*args, **kwargs)
            self.counts_bytes = self.unit == "B"
            (byte_bars if self.counts_bytes else file_bars).append(self)
            began[:] = began or [time.monotonic()]

        def update(self, n: float | None = 1):
            shown = super().update(n)
            if byte_bars and (self.counts_bytes or self.n >= (self.total or 0)):
                send()
            return shown

    return ByteProgress


# ---------------------------------------------------------------- whole models, before the libraries load them

WEIGHTS = (".safetensors", ".bin")
CONFIGS = (".json", ".txt", ".model")       # configs, tokenizer vocabularies and merges, sentencepiece


def repo_files(repo: str) -> list[str]:
    """The file names of hub repository `repo` (one request)."""
    from huggingface_hub import HfApi

    return list(HfApi().list_repo_files(repo))


def _plain(name: str, ext: str) -> bool:
    """model.safetensors, model-00001-of-00002.safetensors: yes; model.fp16.safetensors (a variant): no."""
    return name.endswith(ext) and "." not in name[: -len(ext)]


def load_files(files: list[str], folder: str = "") -> list[str]:
    """What `from_pretrained` reads from `folder` of a repository with these files: its configs and
    tokenizer files (shard indexes among them), and one set of weights: the plain safetensors
    (shards too), else the plain .bin; not the variants (fp16, non_ema), not other formats (ckpt,
    onnx, msgpack), not other folders."""
    prefix = f"{folder}/" if folder else ""
    here = [f[len(prefix):] for f in files if f.startswith(prefix) and "/" not in f[len(prefix):]]
    chosen = [n for n in here if n.endswith(CONFIGS)]
    for ext in WEIGHTS:
        weights = [n for n in here if _plain(n, ext)]
        if weights:
            chosen += weights
            break
    return sorted(prefix + n for n in chosen)


def diffusers_files(files: list[str], index: dict, skip: tuple[str, ...] = ()) -> list[str]:
    """What a diffusers pipeline with this model_index.json loads: the index and each component's
    `load_files` (components in `skip`, or set to null in the index, are left out)."""
    parts = [k for k, v in index.items() if not k.startswith("_") and k not in skip and isinstance(v, list)
             and v and v[0] is not None]
    return ["model_index.json"] + [f for part in parts for f in load_files(files, part)]


def cached(repo: str, filename: str, cache_dir: str | Path | None = None) -> bool:
    """Whether the hub cache holds `filename` of `repo` (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename, cache_dir=None if cache_dir is None else str(cache_dir)),
                      str)


def prefetch(repo: str, choose: Callable[[list[str]], list[str]], *, cache_dir: str | Path | None = None,
             progress: Callable | None = None, label: str = "") -> int:
    """Download those of the files `choose` picks from the repository's list (`load_files`,
    `diffusers_files`) that the hub cache lacks, in one `snapshot_download` whose bytes
    reach `progress` (default: the console) as ProgressEvents; returns how many were fetched.
    Call it only where the hub may be used (`offline_reason` is None); the library that loads the
    model then finds its files in the cache."""
    from huggingface_hub import snapshot_download

    from vid2vid.core.progress import ConsoleProgress

    missing = [f for f in choose(repo_files(repo)) if not cached(repo, f, cache_dir)]
    if missing:
        snapshot_download(repo, cache_dir=None if cache_dir is None else str(cache_dir), allow_patterns=missing,
                          tqdm_class=byte_progress(progress or ConsoleProgress(), label or repo))
    return len(missing)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def looks_like_hub_id(text: str) -> bool:
    """True for 'owner/name' (one slash, no path syntax such as ./ or ~): the one test of a hub id that
    Stable Diffusion models, depth models and the page's model fields share. Each part starts with a
    letter or digit and holds letters, digits, '_', '-' and '.', never '..' (the hub refuses that too)."""
    return bool(_HUB_ID.match(text)) and ".." not in text


def hub_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the hub could not give us this file"."""
    from huggingface_hub import errors

    return (OSError, errors.EntryNotFoundError, errors.HfHubHTTPError, ValueError)


def missing_model(kind: str, name: str, repo: str, files: tuple[str, ...] = (), reason: str = "") -> ModelNotFound:
    """The error for a model that is neither cached nor downloadable right now."""
    wanted = " ".join(files)
    why = f" ({reason})" if reason else ""
    return ModelNotFound(
        f"{kind} model '{name}' (hub repository {repo}) is not in the Hugging Face cache and could not be "
        f"downloaded{why}; on a machine with internet run `hf download {repo}{' ' + wanted if wanted else ''}` "
        f"(or run once without HF_HUB_OFFLINE), or download the files into a folder and give that folder "
        f"as the model")


def hub_files(kind: str, name: str, repo: str, filenames: tuple[str, ...], *,
              cache_dir: str | Path | None = None, local_files_only: bool | None = None,
              progress: Callable | None = None) -> list[Path]:
    """Local paths of `filenames` from hub repository `repo` (downloaded into the cache when allowed
    and the hub can be reached; `progress` gets the bytes, default: the console)."""
    from huggingface_hub import hf_hub_download

    from vid2vid.core.progress import ConsoleProgress

    offline = offline_reason(local_files_only)
    paths = []
    for filename in filenames:
        try:
            bar = byte_progress(progress or ConsoleProgress(), f"{repo}/{filename}")
            paths.append(Path(hf_hub_download(repo, filename, cache_dir=None if cache_dir is None else str(cache_dir),
                                              local_files_only=offline is not None, tqdm_class=bar)))
        except hub_errors() as exc:
            raise missing_model(kind, name, repo, filenames, offline or short_reason(exc)) from exc
    return paths


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), for error messages."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first.split(". ")[0][:200]
