"""HDR (PQ or HLG, BT.2020) pictures to SDR BT.709, and high-bit-depth RGB rounded to 8 bits.

The FFmpeg libraries in the PyAV wheel have the `tonemap` filter but not `zscale`, and the
`colorspace` filter knows no PQ or HLG transfer, so nothing in the wheel can bring PQ / HLG to
linear light. This module is the documented fallback, in numpy, on the 16-bit R'G'B' that the
decoder gives (its YUV -> RGB step honours the BT.2020 matrix):

1. linear light, 1.0 = SDR reference white (100 cd/m2), as zscale's `npl=100`:
   PQ: the SMPTE ST 2084 EOTF; HLG: the BT.2100 inverse OETF, then the OOTF of a 1000 cd/m2
   display (system gamma 1.2);
2. BT.2020 primaries to BT.709 (a 3x3 matrix in linear light, derived from the primaries);
3. Hable's filmic curve on the brightest component, the colour scaled along with it (FFmpeg's
   `tonemap=hable` with `desat=0`), with the signal peak at 1000 cd/m2 (10 x reference white)
   unless told otherwise, a common mastering peak;
4. clip to [0, 1] and encode for a BT.709 display: the inverse of the BT.1886 EOTF (gamma
   1/2.4, as zimg encodes display light for `t=bt709`), then rounded (not truncated) to 8 bits.

Checked in tests against FFmpeg's own chain `zscale=t=linear:npl=100, zscale=p=bt709,
tonemap=hable:desat=0:peak=10, zscale=t=bt709` run by the imageio-ffmpeg binary.
"""
from __future__ import annotations

import numpy as np

REFERENCE_WHITE = 100.0      # cd/m2 of SDR white: linear 1.0
DEFAULT_PEAK_NITS = 1000.0
HLG_DISPLAY_NITS = 1000.0

# CIE xy of the primaries and of the D65 white point
BT709_XY = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
BT2020_XY = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
D65_XY = (0.3127, 0.3290)
BT2020_LUMA = (0.2627, 0.6780, 0.0593)

# SMPTE ST 2084
_M1, _M2 = 2610 / 16384, 2523 / 4096 * 128
_C1, _C2, _C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
# ARIB STD-B67 / BT.2100 HLG
_HLG_A = 0.17883277
_HLG_B = 1 - 4 * _HLG_A
_HLG_C = 0.5 - _HLG_A * np.log(4 * _HLG_A)


def round_to_8bit(rgb16: np.ndarray) -> np.ndarray:
    """uint16 RGB (0..65535) to uint8 with rounding: v8 = round(v16 * 255 / 65535)."""
    return ((rgb16.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def pq_to_linear(e: np.ndarray) -> np.ndarray:
    """ST 2084 EOTF: PQ signal in [0, 1] to linear light, 1.0 = 100 cd/m2 (so 10000 cd/m2 = 100)."""
    p = np.power(np.clip(e, 0.0, 1.0), 1 / _M2)
    y = np.power(np.maximum(p - _C1, 0.0) / (_C2 - _C3 * p), 1 / _M1)
    return y * (10000.0 / REFERENCE_WHITE)


def hlg_to_linear(e: np.ndarray, display_nits: float = HLG_DISPLAY_NITS) -> np.ndarray:
    """HLG signal (HxWx3, BT.2020 R'G'B' in [0, 1]) to display light, 1.0 = 100 cd/m2:
    inverse OETF to scene light, then the BT.2100 OOTF with gamma 1.2 * 1.111^log2(Lw / 1000)."""
    e = np.clip(e, 0.0, 1.0)
    low = e * e / 3.0
    high = (np.exp((e - _HLG_C) / _HLG_A) + _HLG_B) / 12.0
    scene = np.where(e <= 0.5, low, high)
    gamma = 1.2 * 1.111 ** np.log2(display_nits / 1000.0)
    ys = scene @ np.asarray(BT2020_LUMA, dtype=scene.dtype)
    gain = np.power(np.maximum(ys, 1e-12), gamma - 1.0)[..., None]
    return scene * gain * (display_nits / REFERENCE_WHITE)


def rgb_to_xyz_matrix(primaries_xy, white_xy=D65_XY) -> np.ndarray:
    """The 3x3 RGB -> XYZ matrix of a set of primaries and a white point (SMPTE RP 177)."""
    cols = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries_xy]).T
    wx, wy = white_xy
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return cols * np.linalg.solve(cols, white)


def bt2020_to_bt709_matrix() -> np.ndarray:
    """Linear BT.2020 RGB -> linear BT.709 RGB (ITU-R BT.2087 gives the same numbers to 4 places)."""
    return np.linalg.solve(rgb_to_xyz_matrix(BT709_XY), rgb_to_xyz_matrix(BT2020_XY))


def hable(x: np.ndarray) -> np.ndarray:
    """Hable's (Uncharted 2) filmic curve, with FFmpeg's constants."""
    a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
    return (x * (a * x + c * b) + d * e) / (x * (a * x + b) + d * f) - e / f


def tonemap_hable(rgb: np.ndarray, peak: float) -> np.ndarray:
    """Compress linear RGB (1.0 = reference white) whose brightest value is `peak` into [0, 1],
    by the brightest component, scaling the others with it (hue kept)."""
    sig = np.maximum(rgb.max(axis=-1, keepdims=True), 1e-6)
    return rgb * (hable(sig) / hable(np.asarray(peak, dtype=np.float64)) / sig)


def bt1886_encode(lin: np.ndarray) -> np.ndarray:
    """Display light [0, 1] to the BT.709 video signal a BT.1886 display (gamma 2.4) shows as that light."""
    return np.power(np.clip(lin, 0.0, 1.0), 1 / 2.4)


def hdr_to_sdr(rgb16: np.ndarray, transfer: str, peak_nits: float = DEFAULT_PEAK_NITS) -> np.ndarray:
    """uint16 BT.2020 R'G'B' with PQ ('pq') or HLG ('hlg') transfer to uint8 BT.709 R'G'B' (rounded)."""
    e = rgb16.astype(np.float64) / 65535.0
    if transfer == "pq":
        lin = pq_to_linear(e)
    elif transfer == "hlg":
        lin = hlg_to_linear(e)
    else:
        raise ValueError(f"unknown HDR transfer {transfer!r}; expected 'pq' or 'hlg'")
    lin = lin @ bt2020_to_bt709_matrix().T
    sdr = bt1886_encode(tonemap_hable(lin, peak_nits / REFERENCE_WHITE))
    return np.clip(np.rint(sdr * 255.0), 0, 255).astype(np.uint8)
