"""The command line's helper tools (`vid2vid correct`, `propagate --source`, `fdc-debug`, `compare`, `sigmas`,
`size`, `metrics`, `make-tiny-model`, `doctor`): each reads its options, calls the library and prints.
The parser that defines their options is in cli.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job


def correct_settings(args: Any, parser: Any) -> config.CorrectSettings:
    """The [correct] settings from --config and the options given, validated."""
    from vid2vid.cli.commands import apply_options, base_settings

    settings = apply_options(base_settings(args), args, parser).correct
    settings.validate()
    return settings


def correct(args: Any, parser: Any, job: Job) -> None:
    """`vid2vid correct --source DIR --generated DIR --out DIR [options]`."""
    from vid2vid.temporal.correction import correct_folder

    settings = correct_settings(args, parser)
    info = correct_folder(args.source, args.generated, args.out, settings, depth_dir=args.depth,
                          save_masks=args.save_masks, job=job, overwrite=getattr(args, "overwrite", False),
                          resize=getattr(args, "resize", "just"))
    print(f"{info['frames']} frames in {info['out']} ({info['written']} written, {info['skipped']} kept "
          f"from an earlier run; method {info['method']})")


def propagate(args: Any, parser: Any, job: Job) -> None:
    """`vid2vid propagate --source DIR --keys DIR --out DIR [--resize MODE] [--overwrite]`."""
    from vid2vid.cli.commands import apply_options, base_settings
    from vid2vid.stages.propagate import propagate_folder

    if not args.keys or not args.out:
        parser.error("propagate --source needs --keys DIR (the painted key frames) and --out DIR")
    settings = apply_options(base_settings(args), args, parser)       # the options checked as a stage's are
    settings.propagate.validate()
    info = propagate_folder(args.source, args.keys, args.out, resize=settings.img2img.resize, job=job,
                            overwrite=settings.run.overwrite, steady=settings.propagate.steady_keys)
    print(f"{info['frames']} frames in {info['out']} from {info['keys']} key frames "
          f"(holes {100 * info['hole_fraction']:.2f}% of the propagated pixels, redrawn from the keys' colours)")


def _folder(given: str | None, ws: Path | None, default: str, option: str) -> Path:
    if given:
        return Path(given)
    if ws is not None:
        return ws / default
    raise BadInput(f"give {option} DIR (or -w WORKSPACE to use its {default}/ folder)")


def _pick(folder: Path, index: int, what: str) -> Path:
    from vid2vid.core.workspace import list_frames

    files = list_frames(folder)
    if not files:
        raise BadInput(f"{what} folder {folder} has no image files")
    if not 0 <= index < len(files):
        raise BadInput(f"frame {index + 1} is out of range: {folder} has {len(files)} {what} frames")
    return files[index]


def fdc_debug(args: Any, parser: Any, job: Job) -> None:
    """`vid2vid fdc-debug --frame N -o SHEET.png [--sheet fdc|motion|depth] ...`."""
    from vid2vid.core.imageops import read_image, read_mask, write_image
    from vid2vid.temporal import fdc
    from vid2vid.temporal.fdc_debug import depth_mask_grid, fdc_sheet, motion_mask_grid

    settings = correct_settings(args, parser)
    ws = Path(args.workspace) if getattr(args, "workspace", None) else None
    n = args.frame
    if n < 1:
        raise BadInput(f"--frame {n} must be 1 or more (frames are numbered from 1)")
    tile_width = args.tile_width or None
    if args.sheet == "depth":
        depth_dir = _folder(args.depth, ws, stagetable.stage("depth").folder, "--depth")
        sheet = depth_mask_grid(read_mask(_pick(depth_dir, n - 1, "depth")), tile_width=tile_width or 256)
    else:
        if n < 2:
            raise BadInput("frame 1 has no frame delta; give --frame 2 or later")
        source = _folder(args.source, ws, "frames", "--source")
        delta = fdc.frame_delta(read_image(_pick(source, n - 2, "source")), read_image(_pick(source, n - 1, "source")))
        if args.sheet == "motion":
            sheet = motion_mask_grid(delta, settings.motion_highext, tile_width=tile_width or 208)
        else:
            generated = _folder(args.generated, ws, "img2img", "--generated")
            prev_dir = Path(args.prev) if args.prev else generated
            depth = None
            if settings.delta_mask == "depth":
                depth_dir = _folder(args.depth, ws, stagetable.stage("depth").folder, "--depth")
                depth = read_mask(_pick(depth_dir, n - 1, "depth"))
            sheet = fdc_sheet(read_image(_pick(prev_dir, n - 2, "previous output")),
                              read_image(_pick(generated, n - 1, "generated")), delta, settings,
                              depth=depth, tile_width=tile_width)
    write_image(args.output, sheet)
    print(f"{args.output} ({sheet.shape[1]}x{sheet.shape[0]})")


def sigmas(args: Any, parser: Any, job: Job) -> None:
    """`vid2vid sigmas [--steps --denoise --sigma-min --sigma-max] -o PLOT.png`."""
    from vid2vid.core.workspace import atomic_write_bytes
    from vid2vid.diffusion import schedules
    from vid2vid.diffusion.plot import plot_png, schedule_table

    png = plot_png(args.steps, args.denoise, args.sigma_min, args.sigma_max)
    atomic_write_bytes(args.output, png)
    for name, full in schedule_table(args.steps, args.denoise, args.sigma_min, args.sigma_max).items():
        print(f"{name:>16}: {schedules.format_sigmas(schedules.truncate(full, args.denoise))}")
    print(args.output)


def size(args: Any, parser: Any, job: Job) -> None:
    """Print recommended canvases (multiples of 8 and of 64) for a source of args.width x args.height."""
    from vid2vid.config.canvas import format_table, recommend_sizes

    w, h = args.width, args.height
    print(f"source {w}x{h}, aspect {w / h:.4f}")
    print("multiples of 8 (360..720):")
    print(format_table(recommend_sizes(w, h, 8)))
    print("multiples of 64 (256..1024):")
    print(format_table(recommend_sizes(w, h, 64, 256, 1024, top=8)))


def compare(args: Any, parser: Any, job: Job) -> None:
    """`vid2vid compare -w WS [--panels a,b,...] [-o OUT.mp4] [--stats]`."""
    from vid2vid.core.workspace import Workspace
    from vid2vid.temporal.compare import make_comparison

    ws = Workspace(args.workspace).require()
    if args.height and (args.height < 16 or args.height > 4320):
        raise BadInput(f"--height {args.height} is out of range; use 16 to 4320, or 0 for the final video's")
    panels = [p.strip() for p in args.panels.split(",") if p.strip()] if args.panels else None
    with ws.locked():
        info = make_comparison(ws, panels, args.output, job, stats=args.stats, height=args.height)
    print(info["output"])
    print(f"{info['frames']} frames at {info['fps']} fps, {info['width']}x{info['height']}, "
          f"panels: {', '.join(info['panels'])}")


def doctor(args: Any, parser: Any, job: Job) -> None:
    """`vid2vid doctor [--cache DIR] [--json]`: exit 0 when vid2vid can run here (optional parts may be
    missing), 1 when a part it needs is missing."""
    import json

    from vid2vid.cli.doctor import examine, format_report
    from vid2vid.core.errors import Vid2VidError

    report = examine(cache=args.cache)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    if not report.core_ok:
        raise Vid2VidError(f"vid2vid cannot run on this machine: {', '.join(c.name for c in report.failing)} "
                           "missing; the fixes are listed above")


def make_tiny_model(args: Any, parser: Any, job: Job) -> None:
    """`vid2vid make-tiny-model DIR [--single-file] [--passthrough | --controlnet | --tiny-vae | --ip-adapter |
    --motion-module | --video-model]`."""
    from vid2vid.diffusion import tiny

    if getattr(args, "tiny_vae", False):            # only the tiny VAE (for --vae)
        path = tiny.make_tiny_vae(args.dir, single_file=args.single_file)
        job.say(f"tiny VAE written: {path}")
        print(path)
        return
    if getattr(args, "motion_module", False):       # only the tiny motion module (for --motion-module)
        from vid2vid.diffusion.tiny_motion import make_tiny_motion_module

        path = make_tiny_motion_module(args.dir, single_file=args.single_file)
        job.say(f"tiny motion module written: {path}")
        print(path)
        return
    if getattr(args, "ip_adapter", False):          # only the tiny IP-Adapter and its image encoder
        from vid2vid.diffusion.tiny_ip_adapter import make_tiny_ip_adapter

        path = make_tiny_ip_adapter(args.dir)
        job.say(f"tiny IP-Adapter written: {path} (use it with --ip-adapter {path})")
        print(path)
        return
    if getattr(args, "video_model", False):         # the tiny Wan VACE (for --video-model)
        from vid2vid.diffusion.wan_tiny import make_tiny_wan_vace, write_comfy_layout

        if args.single_file:                        # ComfyUI's split files under DIR/models/
            path = write_comfy_layout(args.dir)
            job.say(f"tiny Wan VACE written as ComfyUI's split files; its transformer: {path}")
        else:
            path = make_tiny_wan_vace(args.dir)
            job.say(f"tiny Wan VACE video model written: {path}")
        print(path)
        return
    if getattr(args, "controlnet", False):          # only the tiny ControlNet
        from vid2vid.diffusion.tiny_controlnet import make_tiny_controlnet

        path = make_tiny_controlnet(args.dir, single_file=args.single_file)
    elif args.passthrough and args.single_file:
        raise BadInput("--passthrough writes a diffusers folder (its VAE's scale lives in the folder's config); "
                       "leave out --single-file")
    else:
        path = tiny.make_tiny_model(args.dir, single_file=args.single_file, passthrough_vae=args.passthrough)
    job.say(f"tiny model written: {path}" + (" (pass-through VAE: a run shows the picture; the demo also "
                                             "uses --sigma-max 0.6 for light strokes)" if args.passthrough else ""))
    print(path)


def metrics(args: Any, parser: Any, job: Job) -> dict:
    """`vid2vid metrics --source VIDEO|DIR OUTPUT [--ref DIR] [--json] [--plot PNG]
    [--metrics-size N] [--metrics-every N]`, one frame pair at a time."""
    from vid2vid.temporal import metrics as m
    from vid2vid.temporal import reporting
    from vid2vid.video.read import frame_count, iter_sequence

    # 1. the options and the output's length; the source (at the output's frame count) and the
    #    reference are read alongside it, frame by frame
    max_side, every = getattr(args, "metrics_size", 0), getattr(args, "metrics_every", 1)
    m.check_sampling(max_side, every)
    n = frame_count(args.output)
    if n < 2:
        raise BadInput(f"{args.output} has {n} frame(s); the figures need at least 2")
    output = iter_sequence(args.output)
    source = iter_sequence(args.source, n)
    ref = iter_sequence(args.ref, n) if args.ref else None
    # 2. compute the figures (one progress step per pair)
    tracker = job.tracker("metrics", n - 1) if job is not None else None
    report = m.consistency_report(source, output, ref, progress=tracker.advance if tracker else None,
                                  max_side=max_side, every=every)
    # 3. show them
    print(reporting.report_json(report) if args.json else reporting.format_report(report))
    if getattr(args, "plot", None):
        reporting.plot_report(report, args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return report
