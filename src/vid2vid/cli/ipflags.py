"""The IP-Adapter flags: `--ip-adapter FILE|DIR[:SCALE]` with `--reference SOURCE`, repeatable, paired in order
(the `[[img2img.ip_adapter]]` tables from the command line). SOURCE's forms are config/reference.py's."""
from __future__ import annotations

import argparse

from vid2vid import config
from vid2vid.cli.pairs import add_paired


def add_ip_adapter_options(parser: argparse.ArgumentParser) -> None:
    """--ip-adapter FILE|DIR[:SCALE] and --reference SOURCE, repeatable and paired in order."""
    add_paired(parser, ("--ip-adapter", "FILE|DIR[:SCALE]",
                        "IP-Adapter file (ip-adapter_sd15.safetensors, ...) or a folder holding it and its "
                        "image_encoder/, optionally :SCALE (default 1); repeatable, each with its --reference; "
                        "replaces the settings file's adapters (window and image encoder: [[img2img.ip_adapter]])"),
               ("--reference", "SOURCE", "reference picture of the matching --ip-adapter: an image file, a "
                                         "folder of images, first-painted or key:N (repeatable); with "
                                         "--video-model and no --ip-adapter, the video model's reference"))


def apply_ip_adapter_options(settings: config.Settings, args: argparse.Namespace) -> None:
    """Given --ip-adapter/--reference pairs replace img2img's IP-Adapter list; one --reference with
    --video-model and no --ip-adapter is the video model's reference image (VACE's own input)."""
    from vid2vid.core.errors import BadInput
    from vid2vid.diffusion.loading import parse_weighted

    models, refs = vars(args).get("cli.ip_adapter"), vars(args).get("cli.reference")
    if models is None and refs is None:
        return
    models, refs = models or [], refs or []
    if not models and len(refs) == 1 and settings.img2img.video_model:   # VACE's own reference input
        settings.img2img.video_reference = refs[0]
        return
    if len(models) != len(refs):
        raise BadInput(f"{len(models)} --ip-adapter and {len(refs)} --reference given; give each --ip-adapter "
                       "its --reference SOURCE, in the same order")
    pairs = [(parse_weighted(m, 1.0), r) for m, r in zip(models, refs)]
    settings.img2img.ip_adapter = [config.IPAdapterSettings(model=spec, reference=ref, scale=scale)
                                   for (spec, scale), ref in pairs]
