"""The reference pictures of a run's IP-Adapters: embedded once, kept in the workspace.

Before the model of a run is loaded for painting, `prepare` makes, for each `[[img2img.ip_adapter]]`,
the file `img2img.reference/ip-N-<key>.safetensors` holding the (cond, uncond) embedding of its
reference (`image_encoder.embed`), with the frames a painted reference needs painted first:
- an image or a folder of images: read and embedded (a folder's embeddings averaged);
- `first-painted` / `key:N`: frame 1 / frame N is painted first with the run's settings but
  without any adapter, written to `img2img.reference/painted-0000N-<key>.png`, read back from that
  file and embedded: a run whose reference is that file gives the same frames.
The key holds everything the embedding depends on (the adapter, the pictures by identity, the
adapter-free run's key for a painted one), so a resumed run finds it, and `prepare` removes the
files of other keys. It returns the settings with `embedding` naming the file: the model workers
and the Ray actors read it (`load_units`) and never load the image encoder.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vid2vid.config.reference import parse_reference, reference_images
from vid2vid.core.errors import BadInput

FOLDER = "img2img.reference"


def where(n: int, spec: str) -> str:
    return "{img2img.ip_adapter} " + f"{n} '{spec}'"


def embedding_file(root: Path, n: int, key: str) -> Path:
    return root / FOLDER / f"ip-{n}-{key}.safetensors"


def painted_file(root: Path, frame: int, plain: str) -> Path:
    """Where frame `frame` painted without adapters (run key `plain`) is kept."""
    return root / FOLDER / f"painted-{frame:05d}-{plain[:16]}.png"


def _read(path: Path, place: str) -> np.ndarray:
    from vid2vid.core import imageops

    try:
        return imageops.read_image(path)
    except BadInput as exc:
        raise BadInput(f"{place}: the reference image {path} cannot be read; give a PNG, JPEG or WebP picture") \
            from exc


# ---------------------------------------------------------------- before the run

def check(settings_list, frames: int | None = None) -> None:
    """Everything that can be checked without loading a model: adapter files, their image encoders, the
    reference pictures (readable) and key:N (within the clip's `frames`)."""
    from vid2vid.diffusion.image_encoder import find_image_encoder
    from vid2vid.diffusion.ip_adapter import read_adapter

    for n, ip in enumerate(settings_list, 1):
        place = where(n, ip.model)
        ip.validate()
        adapter = read_adapter(ip.model)
        find_image_encoder(adapter, ip.image_encoder)
        ref = parse_reference(ip.reference, place + " reference")
        if ref.kind in ("image", "folder"):
            for path in reference_images(ref, place + " reference"):
                _read(path, place)
        elif frames is not None and ref.frame_number() > frames:
            raise BadInput(f"{place}: reference key:{ref.frame} is beyond the clip's {frames} frames; give a frame "
                           "from 1 to the last")


def without_adapters(settings):
    """The settings of the run without its IP-Adapters (what paints a painted reference), all frames."""
    from dataclasses import replace

    return replace(settings, img2img=replace(settings.img2img, ip_adapter=[], single=0))


def check_fits(settings_list, unet) -> None:
    """Each adapter fits the loaded model's UNet (its family and layout)."""
    from vid2vid.diffusion.ip_adapter import check_fits as fits
    from vid2vid.diffusion.ip_adapter import read_adapter

    for ip in settings_list:
        fits(read_adapter(ip.model), unet)


def key_params(settings_list) -> list[dict]:
    """What the adapters add to the stage key: files by identity (name, size, time), the rest as set."""
    from vid2vid.diffusion.ip_adapter import adapter_file

    out = []
    for ip in settings_list:
        ref = parse_reference(ip.reference)
        pictures = [_identity(p) for p in reference_images(ref)] if ref.kind in ("image", "folder") else ip.reference
        out.append({"model": _identity(adapter_file(ip.model)), "image_encoder": ip.image_encoder,
                    "reference": pictures, "scale": ip.scale, "start": ip.start, "end": ip.end})
    return out


def _identity(path: Path) -> dict:
    from vid2vid.core.fileid import file_id

    return file_id(path).record(ns=True)


# ---------------------------------------------------------------- computing and storing

def painted_frames(settings_list) -> list[int]:
    """The frames (1-based, ascending) that must be painted without adapters before the run."""
    refs = [parse_reference(ip.reference) for ip in settings_list]
    return sorted({r.frame_number() for r in refs if r.painted()})


def file_keys(settings_list, plain_key: str) -> list[str]:
    """Per adapter, the key of its stored embedding: its key params, and for a painted reference the key of
    the plain (adapter-free) painting `plain_key`."""
    from vid2vid.core.workspace import params_key

    return [params_key({"ip": entry, "plain": plain_key if parse_reference(ip.reference).painted() else None})[:16]
            for ip, entry in zip(settings_list, key_params(settings_list))]


def prepare(root: Path, settings_list, plain_key: str, paint_plain: Callable[[list[int]], list[np.ndarray]],
            say: Callable[[str], None] = lambda _m: None) -> list:
    """The adapters' settings with `embedding` set to their stored embedding under `root`, computed now
    unless a run with the same key stored it (resume, workers, Ray actors).

    plain_key: the stage key of the run without adapters (a painted reference depends on it);
    paint_plain(frames) paints those frames with the run's settings and no adapter (float32 HxWx3).
    Files of other keys in the folder are removed.
    """
    from dataclasses import replace

    from vid2vid.core import imageops

    keys = file_keys(settings_list, plain_key)
    paths = [embedding_file(root, n, k) for n, k in enumerate(keys, 1)]
    todo = [n for n, p in enumerate(paths, 1) if not p.is_file()]
    plain = plain_key[:16]
    frames = [f for f in painted_frames([settings_list[n - 1] for n in todo])
              if not painted_file(root, f, plain).is_file()]
    if frames:
        say(f"img2img: painting frame(s) {', '.join(map(str, frames))} without the IP-Adapter for the reference")
        for f, image in zip(frames, paint_plain(frames)):
            painted_file(root, f, plain).parent.mkdir(parents=True, exist_ok=True)
            imageops.write_image(painted_file(root, f, plain), image)          # atomic
    encoders: dict = {}
    for n in todo:
        ip = settings_list[n - 1]
        cond, uncond = embed_reference(root, ip, n, plain, encoders)
        say(f"img2img: IP-Adapter {n}: reference {ip.reference} embedded ({tuple(cond.shape)})")
        _save(paths[n - 1], cond, uncond)
    keep = set(paths) | {painted_file(root, f, plain) for f in painted_frames(settings_list)}
    for old in (root / FOLDER).glob("*"):
        if old.is_file() and old not in keep:
            old.unlink()
    return [replace(ip, embedding=str(p)) for ip, p in zip(settings_list, paths)]


def embed_reference(root: Path, ip, n: int, plain: str, encoders: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The (cond, uncond) embedding of adapter n's reference; `encoders` caches loaded encoders by spec."""
    from vid2vid.diffusion import image_encoder as ie
    from vid2vid.diffusion.ip_adapter import read_adapter

    place = where(n, ip.model)
    adapter = read_adapter(ip.model)
    spec = ie.find_image_encoder(adapter, ip.image_encoder)
    if spec not in encoders:
        encoders[spec] = ie.load_image_encoder(spec)
    encoder, processor = encoders[spec]
    ie.check_encoder_fits(adapter, encoder, place)
    ref = parse_reference(ip.reference, place + " reference")
    paths = [painted_file(root, ref.frame_number(), plain)] if ref.painted() else reference_images(ref, place)
    return ie.embed(encoder, processor, adapter.kind, [_read(p, place) for p in paths])


def _save(path: Path, cond: torch.Tensor, uncond: torch.Tensor) -> None:
    from safetensors.torch import save_file

    from vid2vid.core.workspace import atomic_path

    with atomic_path(path) as tmp:
        save_file({"cond": cond.contiguous(), "uncond": uncond.contiguous()}, str(tmp))


def load_units(settings_list, say: Callable[[str], None] | None = None) -> list:
    """The IPUnits of a run from the embeddings `prepare` stored (no image encoder is loaded)."""
    from safetensors.torch import load_file

    from vid2vid.diffusion.ip_adapter import read_adapter
    from vid2vid.diffusion.ip_attention import IPUnit

    units = []
    for n, ip in enumerate(settings_list, 1):
        if not ip.embedding or not Path(ip.embedding).is_file():
            raise RuntimeError(f"IP-Adapter {n}: the reference embedding was not prepared (painting/references.py)")
        if say is not None:
            say(f"img2img: IP-Adapter {n} {ip.model} (reference {ip.reference}, scale {ip.scale:g}, steps "
                f"{ip.start:g}..{ip.end:g} of the schedule)")
        stored = load_file(ip.embedding)
        units.append(IPUnit(read_adapter(ip.model), stored["cond"], stored["uncond"], ip.scale, ip.start, ip.end,
                            ip.model))
    return units
