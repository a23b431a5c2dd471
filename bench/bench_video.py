"""Extract at 12 fps (PNG) and export H.264 mp4 with audio: vid2vid vs the ffmpeg binary, side by side.

The baseline is the static `ffmpeg` of the imageio-ffmpeg wheel (benchmark only), doing the same
work: the fps filter to PNG files with the same zlib level, then libx264 CRF 20 yuv420p with the
audio copied. Each side runs `--repeat` times; the best time counts. Target: vid2vid no slower
than 1.2x ffmpeg.

    python bench/bench_video.py [--clip PATH] [--repeat 2]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CLIP = HERE.parent.parent / "shared" / "media" / "mmd-demo-852x480-30fps.mp4"


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default=str(DEFAULT_CLIP))
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    clip = Path(args.clip)
    if not clip.is_file():
        print(f"clip {clip} not found; pass --clip", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="bench-video-"))

    def ours_extract():
        shutil.rmtree(root / "ws", ignore_errors=True)
        subprocess.run([sys.executable, "-m", "vid2vid", "extract", str(clip), "-w", str(root / "ws"),
                        "--fps", "12", "--audio"], check=True, capture_output=True)

    def ours_export():
        (root / "ws" / "manifest.json").exists() or ours_extract()
        out = root / "ours.mp4"
        out.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-m", "vid2vid", "export", "-w", str(root / "ws"), "--from", "frames",
                        "--audio", "-o", str(out)], check=True, capture_output=True)

    def ff_extract():
        shutil.rmtree(root / "ff", ignore_errors=True)
        (root / "ff").mkdir()
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(clip), "-vf", "fps=12", "-compression_level", "1",
                        str(root / "ff" / "%05d.png")], check=True)
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(clip), "-vn", "-c:a", "copy",
                        str(root / "ff" / "audio.mka")], check=True)

    def ff_export():
        n = len(list((root / "ff").glob("*.png")))
        subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-framerate", f"{n}/17",
                        "-i", str(root / "ff" / "%05d.png"), "-i", str(root / "ff" / "audio.mka"),
                        "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
                        "-crf", "20", "-preset", "medium", "-pix_fmt", "yuv420p", "-c:a", "copy", "-shortest",
                        str(root / "ff.mp4")], check=True)

    rows = []
    for name, ours, ff in (("extract 12 fps png + audio", ours_extract, ff_extract),
                           ("export mp4 + audio", ours_export, ff_export)):
        t_ff = best_of(args.repeat, ff)
        t_ours = best_of(args.repeat, ours)
        rows.append((name, t_ours, t_ff))
    n_ours = len(list((root / "ws" / "frames").glob("*.png")))
    n_ff = len(list((root / "ff").glob("*.png")))
    print(f"clip: {clip.name}; frames: vid2vid {n_ours}, ffmpeg {n_ff}; best of {args.repeat}")
    print(f"{'task':32s} {'vid2vid s':>10s} {'ffmpeg s':>10s} {'ratio':>7s}")
    total_o = total_f = 0.0
    for name, o, f in rows:
        total_o, total_f = total_o + o, total_f + f
        print(f"{name:32s} {o:10.2f} {f:10.2f} {o / f:7.2f}x")
    print(f"{'total':32s} {total_o:10.2f} {total_f:10.2f} {total_o / total_f:7.2f}x   (target <= 1.20x)")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
