"""Benchmark: our img2img stage against a plain loop over diffusers' StableDiffusionImg2ImgPipeline.

Both sides do the same work per frame with identical settings: read the source frame, img2img
with the same real sigmas (EulerDiscreteScheduler with `sigmas=`, strength 1.0, so the
pipeline starts from init_latent + noise * real[0] like our init noise weight 1), CFG, seed,
frame delta correction (`fdc.correct_frame`, shift std + motion mask) and a PNG write.

Cases (issue 4):
  a) the tiny model at 256x256, 20 frames, 20 steps, denoise 0.75 (16 sampler steps);
  b) an SD 1.5-architecture UNet, VAE and text encoder with random weights (the real compute
     cost) at 256x256, 4 steps, 3 frames (`--b-size 512` on a GPU).
Source frames: the first frames of media/mmd-demo-852x480-30fps.mp4 at 12 fps when present
(else a synthetic moving square). Prints seconds per frame, the ratio, peak memory (RSS growth
on CPU, max allocated on CUDA) and where the time goes.

    python bench/bench_img2img.py                # both cases
    python bench/bench_img2img.py --case a --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from machine import device_options, start  # noqa: E402  (bench/ on the path first)

CLIP = Path("/work/shared/media/mmd-demo-852x480-30fps.mp4")
PROMPT = "(masterpiece:1.3), best quality, a girl dancing in a room"
NEGATIVE = "lowres, bad hands, blurry"


# ---------------------------------------------------------------- measuring

class PeakMemory:
    """Peak resident memory growth (CPU, sampled every 5 ms) or peak CUDA allocation during a block."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.peak = 0

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base = self.rss()
        self.stop = threading.Event()

        def sample():
            while not self.stop.is_set():
                self.peak = max(self.peak, self.rss() - self.base)
                time.sleep(0.005)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.stop.set()
            self.thread.join()
            self.peak = max(self.peak, self.rss() - self.base)


def time_modules(modules: dict[str, torch.nn.Module], seconds: dict[str, float], cuda: bool):
    """Forward hooks adding each module's forward time to seconds[name]; returns the handles."""
    handles = []
    for name, mod in modules.items():
        start = {}

        def pre(m, args, _name=name, _start=start):
            if cuda:
                torch.cuda.synchronize()
            _start["t"] = time.perf_counter()

        def post(m, args, out, _name=name, _start=start):
            if cuda:
                torch.cuda.synchronize()
            seconds[_name] += time.perf_counter() - _start["t"]

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    return handles


# ---------------------------------------------------------------- inputs

def source_frames(n: int) -> list[np.ndarray]:
    """n float32 RGB frames in [0, 1]: the demo clip at 12 fps, else a synthetic moving square."""
    if CLIP.is_file():
        from vid2vid.video.decode import iter_frames

        out = []
        for f in iter_frames(CLIP, "fps", 12.0):
            out.append(f.rgb().astype(np.float32) / 255.0)
            if len(out) == n:
                return out
    yy, xx = np.mgrid[0:480, 0:852].astype(np.float32)
    base = np.stack([xx / 852, yy / 480, 0.5 + 0 * xx], axis=2)
    frames = []
    for i in range(n):
        img = base.copy()
        img[100:250, 50 + 20 * i:200 + 20 * i] = (0.9, 0.3, 0.2)
        frames.append(img)
    return frames


def make_workspace(root: Path, frames: list[np.ndarray]):
    """A workspace with a complete extract stage holding `frames`."""
    from vid2vid.core.imageops import write_image
    from vid2vid.core.workspace import Workspace, frame_name

    ws = Workspace(root).ensure()
    for i, f in enumerate(frames, 1):
        write_image(ws.path("frames", frame_name(i)), f)
    h, w = frames[0].shape[:2]
    ws.manifest["video"] = {"path": "bench", "width": w, "height": h, "frames": len(frames)}
    ws.begin_stage("extract", {"bench": True, "n": len(frames)}, outputs=())
    ws.complete_stage("extract", frames=len(frames), width=w, height=h)
    return ws


def sd15_random_model(device: torch.device, dtype: torch.dtype):
    """SD 1.5-architecture parts with random weights, built from the bundled configs (no download)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from vid2vid.diffusion.loading import LoadedModel, config_folder

    folder = config_folder("sd1")
    read = lambda p: json.loads((folder / p).read_text())  # noqa: E731
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(read("unet/config.json"))
    vae = AutoencoderKL.from_config(read("vae/config.json"))
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in read("text_encoder/config.json").items()
                                           if not k.startswith("_")}))
    tok = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    for m in (unet, vae, text):
        m.to(device).eval().requires_grad_(False)
        if dtype != torch.float32:
            m.to(dtype)
    return LoadedModel(unet=unet, vae=vae, text_encoder=text, tokenizer=tok,
                       scheduler_config=read("scheduler/scheduler_config.json"),
                       prediction_type="epsilon", device=device, dtype=dtype, spec="sd15-random", kind="sd1")


# ---------------------------------------------------------------- the two sides

def run_ours(model, ws, settings, device) -> dict:
    """Our batch stage over the workspace; returns seconds, peak memory and the time breakdown."""
    from vid2vid.core.progress import Job
    from vid2vid.stages import img2img as stage

    with PeakMemory(device) as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        info = stage.run(ws, settings, Job(), model=model)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": total, "cpu": cpu, "peak": mem.peak, "parts": info["time_breakdown"],
            "workers": info.get("model_workers", 1), "threads": info.get("threads_per_worker")}


def run_plain(model, ws, settings, device) -> dict:
    """A plain loop: per frame read, pipeline(...), correct_frame, write."""
    from diffusers import EulerDiscreteScheduler

    from vid2vid.core import imageops
    from vid2vid.core.workspace import frame_name
    from vid2vid.diffusion.engine import real_sigmas_for
    from vid2vid.temporal import fdc

    s, c = settings.img2img, settings.correct
    pipe = model.to_pipeline(EulerDiscreteScheduler.from_config(model.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    sigmas = [float(v) for v in real_sigmas_for(s, model.sigmas.numpy())]
    seconds: dict[str, float] = defaultdict(float)
    cuda = device.type == "cuda"
    hooks = time_modules({"text_encoder": model.text_encoder, "unet": model.unet,
                          "vae_encode": model.vae.encoder, "vae_decode": model.vae.decoder}, seconds, cuda)
    out_dir = ws.path("plain")
    frames = ws.frames()
    try:
        with PeakMemory(device) as mem:
            t0, c0 = time.perf_counter(), time.process_time()
            prev_src = prev_out = None
            for i, path in enumerate(frames, 1):
                ta = time.perf_counter()
                src = imageops.fit(imageops.read_image(path), s.width, s.height, s.resize)
                seconds["read"] += time.perf_counter() - ta
                gen = pipe(prompt=s.prompt, negative_prompt=s.negative,
                           image=torch.from_numpy(src).permute(2, 0, 1)[None], strength=1.0, sigmas=sigmas,
                           guidance_scale=s.cfg,
                           generator=torch.Generator("cpu").manual_seed(s.seed), output_type="np").images[0]
                tb = time.perf_counter()
                delta = None if prev_src is None else fdc.frame_delta(prev_src, src)
                out, _ = fdc.correct_frame(gen.astype(np.float32), prev_out, delta, c)
                tc = time.perf_counter()
                out8 = imageops.to_uint8(out)
                imageops.write_image(out_dir / frame_name(i), out8)
                seconds["correct"] += tc - tb
                seconds["write"] += time.perf_counter() - tc
                prev_src, prev_out = src, imageops.to_float(out8)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        for h in hooks:
            h.remove()
    return {"seconds": total, "cpu": cpu, "peak": mem.peak, "parts": dict(seconds)}


def report(name: str, n: int, ours: dict, plain: dict) -> None:
    print(f"\n== {name}: {n} frames")
    print(f"{'':>10} {'s/frame':>9} {'cpu s/fr':>9} {'peak MB':>9}   time breakdown (s)")
    for label, r in (("plain", plain), ("ours", ours)):
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["parts"].items(), key=lambda kv: -kv[1]))
        print(f"{label:>10} {r['seconds'] / n:>9.3f} {r['cpu'] / n:>9.3f} {r['peak'] / 2 ** 20:>9.0f}   {parts}")
    print(f"ratio plain/ours: {plain['seconds'] / ours['seconds']:.2f}x wall clock, "
          f"{plain['cpu'] / ours['cpu']:.2f}x CPU time (CPU time is steadier on a shared machine)")
    model = sum(v for k, v in ours["parts"].items() if k in ("unet", "vae_encode", "vae_decode"))
    if ours["workers"] == 1:
        other = ours["seconds"] - model
        print(f"ours outside UNet and VAE: {100 * other / ours['seconds']:.1f}% of the wall time "
              f"(read/correct/write run beside the model on their own threads)")
    else:
        busy = ours["workers"] * ours["seconds"]
        print(f"ours: {ours['workers']} model workers x {ours['threads']} thread(s); part times above are "
              f"summed over the workers; outside UNet and VAE: {100 * (busy - model) / busy:.1f}% of "
              f"workers x wall time")


def bench_case(name, model, frames, settings, device, tmp: Path, repeat: int = 1):
    """Run both sides `repeat` times, alternating which goes first; keep each side's fastest run."""
    best: dict[str, dict] = {}
    for r in range(repeat):
        order = ("plain", "ours") if r % 2 == 0 else ("ours", "plain")
        for side in order:
            ws = make_workspace(tmp / f"{name[:1]}-{side}-{r}", frames)
            res = (run_plain if side == "plain" else run_ours)(model, ws, settings, device)
            print(f"  run {r + 1} {side}: {res['seconds'] / len(frames):.3f} s/frame, "
                  f"{res['cpu'] / len(frames):.3f} CPU s/frame "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
            if side not in best or res["seconds"] < best[side]["seconds"]:
                best[side] = res
    report(name, len(frames), best["ours"], best["plain"])
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", choices=("a", "b", "both"), default="both")
    device_options(ap)
    ap.add_argument("--batch-a", type=int, default=2, help="our batch size in case a")
    ap.add_argument("--batch-b", type=int, default=3, help="our batch size in case b")
    ap.add_argument("--b-size", type=int, default=256, help="canvas side in case b (512 on a GPU)")
    ap.add_argument("--frames-a", type=int, default=20)
    ap.add_argument("--frames-b", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="runs per side, alternating the order; best kept")
    args = ap.parse_args()
    device, dtype = start(args)
    from vid2vid.config import Settings
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model

    frames = source_frames(max(args.frames_a, args.frames_b))
    with tempfile.TemporaryDirectory(prefix="bench-img2img-") as tmpdir:
        tmp = Path(tmpdir)
        if args.case in ("a", "both"):
            st = Settings()
            st.img2img.__dict__.update(model=str(tmp / "tiny"), prompt=PROMPT, negative=NEGATIVE, steps=20,
                                       denoise=0.75, width=256, height=256, batch_size=args.batch_a)
            model = load_model(str(make_tiny_model(tmp / "tiny")), device=str(device))
            bench_case("a) tiny model 256x256", model, frames[:args.frames_a], st, device, tmp, args.repeat)
        if args.case in ("b", "both"):
            st = Settings()
            st.img2img.__dict__.update(model="sd15-random", prompt=PROMPT, negative=NEGATIVE, steps=4,
                                       denoise=0.75, width=args.b_size, height=args.b_size,
                                       batch_size=args.batch_b)
            t0 = time.perf_counter()
            model = sd15_random_model(device, dtype)
            print(f"\n(SD 1.5-architecture random model built in {time.perf_counter() - t0:.0f} s)")
            bench_case(f"b) SD 1.5 architecture {args.b_size}x{args.b_size}, 4 steps", model,
                       frames[:args.frames_b], st, device, tmp, args.repeat)


if __name__ == "__main__":
    main()
