"""Where the control stage keeps each ControlNet's images, and the control images of single frames.

control/<n>-<source>/00001.png ...: n is the ControlNet's place in `img2img.controlnet` (1 = the first).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput, stage_ref
from vid2vid.core.workspace import Workspace, frame_name
from vid2vid.video import controlimages

OUTPUT = stagetable.stage("control").folder
DEPTH = stagetable.stage("depth").folder


def folder_name(place: int, cn: config.ControlNetSettings) -> str:
    """control/<n>-<source> for the n-th ControlNet (1-based)."""
    return f"{place}-{cn.control}"


def image_path(ws: Workspace, place: int, cn: config.ControlNetSettings, index: int) -> Path:
    return ws.path(OUTPUT, folder_name(place, cn), frame_name(index))



class FrameControls:
    """The control images of single frames (uint8, canvas-sized, one per ControlNet), from the workspace."""

    def __init__(self, ws: Workspace, settings: config.Settings):
        self.ws, self.s = ws, settings.img2img
        self.frames = ws.frames()
        self.user = {n: controlimages.user_images(cn.folder, len(self.frames))
                     for n, cn in enumerate(self.s.controlnet, 1) if cn.control == "folder"}

    def depth(self, frame: Path) -> np.ndarray:
        p = self.ws.path(DEPTH, frame.stem + ".png")
        if not p.is_file():
            raise BadInput(f"depth map {p} is missing (a ControlNet uses the depth source); "
                           f"run {stage_ref('depth', self.ws.root)} first")
        return imageops.fit(imageops.read_mask(p), self.s.width, self.s.height, self.s.resize)

    def __call__(self, index: int) -> list[np.ndarray]:
        """Frame `index` (1-based): one control image per ControlNet."""
        s = self.s
        frame = self.frames[index - 1]
        canvas = imageops.to_uint8(imageops.fit(imageops.read_image(frame), s.width, s.height, s.resize))
        depth = self.depth(frame) if any(cn.control == "depth" for cn in s.controlnet) else None
        out = []
        for n, cn in enumerate(s.controlnet, 1):
            user = None
            if cn.control == "folder":
                user = imageops.fit(imageops.read_image(self.user[n][index - 1]), s.width, s.height, s.resize)
            out.append(controlimages.control_image(cn.control, canvas, low=cn.low, high=cn.high, blur=cn.blur,
                                             depth=depth, user=user))
        return out
