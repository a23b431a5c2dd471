"""Getting model files from the Hugging Face hub, with errors that say how to get them instead.

Used by the depth models (`vid2vid.models.depth`) and the taggers. Weights are only fetched on a
user's machine, into the usual hub cache; with `HF_HUB_OFFLINE=1` (or `local_files_only=True`)
only the cache is read. Whatever goes wrong (not cached, no network, repository or file gone)
becomes one `ModelNotFound` naming the repository, the download command and the local-folder
alternative.
"""
from __future__ import annotations

import re
from pathlib import Path

from vid2vid.errors import ModelNotFound

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
              cache_dir: str | Path | None = None, local_files_only: bool | None = None) -> list[Path]:
    """Local paths of `filenames` from hub repository `repo` (downloaded into the cache when allowed)."""
    from huggingface_hub import hf_hub_download

    paths = []
    for filename in filenames:
        try:
            paths.append(Path(hf_hub_download(repo, filename, cache_dir=None if cache_dir is None else str(cache_dir),
                                              local_files_only=bool(local_files_only))))
        except hub_errors() as exc:
            raise missing_model(kind, name, repo, filenames, short_reason(exc)) from exc
    return paths


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), for error messages."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first.split(". ")[0][:200]
