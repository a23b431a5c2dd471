"""What every model benchmark does first: the options that pick the device and CPU threads, this
checkout's vid2vid on the path, and one line saying what the run measures on (device, dtype,
threads, load), so that figures from different machines can be told apart."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def device_options(ap: argparse.ArgumentParser, threads: int = 2, size: int | None = None) -> None:
    """--threads, --device (and --size, the canvas side, when the benchmark has one)."""
    if size is not None:
        ap.add_argument("--size", type=int, default=size, help="canvas side in pixels")
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--device", default="auto")


def start(args: argparse.Namespace, dtype: str = "auto"):
    """Set the threads, put this checkout's src/ first, resolve (device, dtype) and print the line."""
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    from vid2vid.core import devices

    device = devices.pick(args.device)
    chosen = devices.resolve_dtype(dtype, device)
    print(f"device {device}, dtype {chosen}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    return device, chosen
