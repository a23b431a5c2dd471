"""Named presets: overlays of settings applied over the defaults or a settings file.

    settings = presets.apply(config.load_toml("my.toml"), "fast")

Order everywhere: defaults, then the settings file, then the preset, then options given on the
command line (so `--preset fast --steps 6` runs 6 steps). `vid2vid config --dump --preset fast`
prints the result. A preset only sets values; it never changes what another setting means.

- `fast`: a few-step model's settings (LCM, TCD, Hyper-SD, SD-Turbo as a LoRA or a checkpoint):
  the lcm sampler, 4 steps (4 UNet evaluations per frame at any denoising strength), CFG 1 (one
  UNet batch half per step instead of two). It leaves the model and the VAE to the user: give a
  tiny VAE (`--vae` with TAESD) for the full speed; no tiny VAE ships with vid2vid.
"""
from __future__ import annotations

from vid2vid.core.errors import BadInput

PRESETS: dict[str, dict[str, dict]] = {
    "fast": {"img2img": {"sampler": "lcm", "steps": 4, "cfg": 1.0}},
}


def overlay(name: str) -> dict[str, dict]:
    """The settings preset `name` sets, per section."""
    try:
        return PRESETS[name]
    except KeyError:
        raise BadInput(f"preset '{name}' is not known; use one of: {', '.join(PRESETS)}") from None


def apply(settings, name: str):
    """Set the preset's values on `settings` (a config.Settings) and return it."""
    for section, values in overlay(name).items():
        target = getattr(settings, section)
        for key, value in values.items():
            setattr(target, key, value)
    return settings
