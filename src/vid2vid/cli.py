"""The `vid2vid` command: one subcommand per stage, plus `run`, `demo` and helper tools.

Thin over the library: each handler builds settings from the options and calls one library
function. Stage options are generated from the settings dataclasses (config.py), so the
command line, the TOML file and the web UI always agree. Exit codes: 0 done, 1 failed while
working, 2 bad input or usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import traceback
import typing
from typing import Any, Callable

from vid2vid import __version__, config
from vid2vid.errors import Interrupted, Vid2VidError
from vid2vid.progress import ConsoleProgress, Job

# Choices per (section, field), for argparse's own checks and help.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("extract", "frames"): config.FRAME_MODES,
    ("extract", "format"): config.IMAGE_FORMATS,
    ("img2img", "sampler"): config.SAMPLERS,
    ("img2img", "schedule"): config.SCHEDULES,
    ("img2img", "resize"): config.RESIZE_MODES,
    ("img2img", "prediction"): config.PREDICTION_TYPES,
    ("correct", "fdc"): config.FDC_METHODS,
    ("correct", "method"): config.CORRECT_METHODS,
    ("correct", "delta_mask"): config.DELTA_MASKS,
    ("correct", "spatial_mask"): config.SPATIAL_MASKS,
    ("correct", "flow_mask"): config.DELTA_MASKS,
    ("export", "source"): config.EXPORT_SOURCES,
    ("export", "format"): config.EXPORT_FORMATS,
}

# Flags that differ from --<field-name>, per command ("*" = every command).
FLAG_NAMES: dict[tuple[str, str, str], list[str]] = {
    ("*", "export", "source"): ["--from"],
    ("*", "img2img", "loras"): ["--lora"],
    ("*", "img2img", "embeddings"): ["--embedding"],
    ("run", "extract", "format"): ["--frame-format"],
    ("run", "extract", "audio"): ["--audio"],
    ("run", "export", "audio"): ["--audio"],
    ("run", "depth", "model"): ["--depth-model"],
    ("run", "tags", "model"): ["--tags-model"],
    ("run", "upscale", "model"): ["--upscale-model"],
    ("run", "upscale", "tile"): ["--upscale-tile"],
    ("run", "interpolate", "model"): ["--interpolate-model"],
    ("run", "tags", "threshold"): ["--tags-threshold"],
    ("run", "run", "depth"): ["--depth"],
    ("run", "run", "tags"): ["--tags"],
    ("run", "run", "upscale"): ["--upscale"],
    ("run", "run", "interpolate"): ["--interpolate"],
    ("run", "export", "output"): ["-o", "--output"],
    ("*", "export", "output"): ["-o", "--output"],
}

HELP: dict[str, str] = {
    "cache": "folder that holds one workspace per video",
    "overwrite": "replace results made with other settings (off: keep them and stop)",
    "depth": "run the depth stage (also runs when a depth mask is chosen)",
    "tags": "run the tagger stage",
    "upscale": "run the Real-ESRGAN stage",
    "interpolate": "run the RIFE stage",
    "frames": "which frames: a fixed fps, all, or only I / P / B frames",
    "fps": "frames per second to extract (with --frames fps)",
    "format": "file format",
    "audio": "keep the source audio (extract) / put it back (export)",
    "max_pixels": "refuse videos whose width x height is larger",
    "model": "model name, hub id, folder or checkpoint file",
    "topk": "how many tags to keep",
    "threshold": "tag probability threshold 0..1",
    "prompt": "prompt (A1111 syntax: (word:1.3), [word])",
    "negative": "negative prompt",
    "sampler": "sampler (lcm, tcd: for few-step models such as LCM/TCD/Hyper-SD; their own timestep grid, "
               "steps = UNet evaluations, the sigma options do not apply)",
    "steps": "sampling steps of the full schedule (1..150)",
    "denoise": "denoising strength 0..1 (truncates the schedule)",
    "schedule": "sigma schedule; default = the model's own (not used by lcm and tcd)",
    "sigma_min": "smallest sigma of the overridden schedule (not used by lcm and tcd)",
    "sigma_max": "largest sigma of the overridden schedule (not used by lcm and tcd)",
    "init_noise": "init noise weight (0 = no noise on the init latent)",
    "cfg": "classifier-free guidance scale",
    "seed": "seed, the same for every frame",
    "width": "output width (multiple of 8)",
    "height": "output height (multiple of 8)",
    "resize": "how a frame is fitted to width x height",
    "batch_size": "frames per UNet call",
    "workers": "CPU only: batches run side by side, each on its share of the cores (0 = automatic: 2 "
               "when there are 2+ cores and 4+ batches, else 1; CUDA always 1)",
    "device": "auto, cpu, cuda or cuda:N",
    "dtype": "auto, float32, float16 or bfloat16",
    "prediction": "what the UNet predicts: auto (from the model; SD 2.x single files: v), epsilon "
                  "(SD 2.x 512-base) or v_prediction (SD 2.x 768-v)",
    "loras": "LoRA file, optionally PATH:WEIGHT (repeatable)",
    "embeddings": "textual inversion file (repeatable)",
    # issue 17
    "vae": "separate VAE: a .safetensors file (e.g. vae-ft-mse-840000), a folder or a hub id; TAESD/TAESDXL "
           "tiny VAEs (diffusers folder or the original taesd_encoder/decoder.pth) for speed",
    "tcd_gamma": "TCD sampler's stochasticity 0..1 (0 = deterministic)",
    "skip_still": "reuse the previous output for a source frame that differs from the last painted one by "
                  "less than this mean absolute difference 0..1 (0.01 = about 2.5 of 255; 0 = off)",
    "compile": "torch.compile the UNet and VAE (first frames slower; pays on long GPU runs)",
    "single": "debug: generate only this frame (1-based) into img2img.debug/ and print the real sigmas",
    "fdc": "statistical correction of each frame's change",
    "delta_mask": "mask applied to each frame's change",
    "spatial_mask": "inpainting mask given to img2img (white = may change)",
    "motion_highext": "motion mask high-ext: odd dilation window 1..15",
    "motion_lowcut": "motion mask low-cut 0..255",
    "depth_lowcut": "depth mask low-cut 0..255 (-1 = none)",
    "method": "correction method: seed statistics or flow-guided",
    "flow_strength": "flow method: 0 = none, higher = steadier (0..0.99)",
    "flow_mask": "flow method: change mask (white = keep the generated frame there)",
    "tile": "tile size in pixels (0 = automatic)",
    "ratio": "interpolation ratio 0.5..4 (2 doubles the frames)",
    "scene_cut": "scene-cut threshold 0..1 (1 = never cut)",
    "source": "frame folder to export",
    "output": "output video path",
    "crf": "H.264 quality (lower is better, 0..51)",
}


def _flags(command: str, section: str, name: str) -> list[str]:
    return FLAG_NAMES.get((command, section, name)) or FLAG_NAMES.get(("*", section, name)) \
        or ["--" + name.replace("_", "-")]


def add_settings_options(parser: argparse.ArgumentParser, command: str, section: str,
                         skip: tuple[str, ...] = ()) -> None:
    """Add one option per field of a settings section; unset options keep the settings' value."""
    cls = type(getattr(config.Settings(), section))
    hints = typing.get_type_hints(cls)
    seen = {a for action in parser._actions for a in action.option_strings}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flags = _flags(command, section, f.name)
        dest = f"{section}.{f.name}"
        hint = hints[f.name]
        if any(fl in seen for fl in flags):        # shared flag (e.g. --audio in run): extend its targets
            for action in parser._actions:
                if set(action.option_strings) & set(flags):
                    action.default_targets.append(dest)  # type: ignore[attr-defined]
            continue
        kw: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS,
                              "help": HELP.get(f.name, f.name.replace("_", " "))}
        if hint is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is list:
            kw["action"] = "append"
            kw["metavar"] = "PATH"
        else:
            kw["type"] = hint if hint in (int, float) else str
            kw["metavar"] = f.name.upper()
            if (section, f.name) in CHOICES:
                kw["choices"] = CHOICES[(section, f.name)]
        action = parser.add_argument(*flags, **kw)
        action.default_targets = [dest]  # type: ignore[attr-defined]
        seen.update(flags)


def apply_options(settings: config.Settings, args: argparse.Namespace,
                  parser: argparse.ArgumentParser) -> config.Settings:
    """Copy every option given on the command line into `settings` (all its targets)."""
    for action in parser._actions:
        targets = getattr(action, "default_targets", None)
        if not targets or action.dest not in vars(args):
            continue
        value = getattr(args, action.dest)
        for dest in targets:
            section, name = dest.split(".")
            setattr(getattr(settings, section), name, value)
    return settings


def _base_settings(args: argparse.Namespace) -> config.Settings:
    path = getattr(args, "config", None)
    settings = config.load_toml(path) if path else config.Settings()
    if getattr(args, "preset", None):            # issue 17: file, then preset, then the options given
        from vid2vid import presets

        presets.apply(settings, args.preset)
    return settings


def add_preset_option(parser: argparse.ArgumentParser) -> None:
    """--preset NAME (issue 17): an overlay of settings over the defaults or --config."""
    from vid2vid import presets

    parser.add_argument("--preset", choices=tuple(presets.PRESETS),
                        help="settings overlay applied after --config and before the options given; fast = "
                             "sampler lcm, 4 steps, CFG 1 (for few-step models; add --vae TAESD for speed)")


# ---------------------------------------------------------------- handlers

def cmd_probe(args, parser, job):
    from vid2vid.video.probe import format_probe, probe

    info = probe(args.video)
    print(json.dumps(info.to_dict(), indent=2) if args.json else format_probe(info))


def _workspace_for(args, settings: config.Settings):
    from vid2vid.workspace import Workspace

    if getattr(args, "workspace", None):
        return Workspace(args.workspace)
    return Workspace.for_video(args.video, settings.run.cache)


def _logged(ws, stage: str, work: Callable[[], Any]) -> Any:
    """Run one stage; a failure or an interruption goes into the workspace's run log, then on."""
    try:
        return work()
    except BaseException as exc:       # logged, then re-raised
        ws.log_failure(stage, exc)
        raise


def cmd_extract(args, parser, job):
    from vid2vid.stages import extract

    settings = apply_options(_base_settings(args), args, parser)
    settings.extract.validate()
    ws = _workspace_for(args, settings)
    with ws.ensure().locked():
        info = _logged(ws, "extract", lambda: extract.run(ws, args.video, settings, job))
    print(f"{info['frames']} frames in {ws.root / 'frames'}")
    print(f"workspace: {ws.root}")


def _stage_command(module: str, section: str) -> Callable:
    """Handler for a stage that reads a workspace and has one settings section."""

    def handler(args, parser, job):
        import importlib

        from vid2vid.workspace import Workspace

        settings = apply_options(_base_settings(args), args, parser)
        getattr(settings, section).validate()
        ws = Workspace(args.workspace).require()
        stage = importlib.import_module(f"vid2vid.stages.{module}")
        with ws.locked():
            info = _logged(ws, module, lambda: stage.run(ws, settings, job))
        for key, value in (info or {}).items():
            print(f"{key}: {value}")

    return handler


def cmd_export(args, parser, job):
    from vid2vid.stages import export
    from vid2vid.workspace import Workspace

    settings = apply_options(_base_settings(args), args, parser)
    settings.export.validate()
    ws = Workspace(args.workspace).require()
    with ws.locked():
        info = _logged(ws, "export", lambda: export.run(ws, settings, job))
    print(info["output"])


def cmd_config(args, parser, job):
    settings = _base_settings(args)
    if args.dump or not args.check:
        print(config.dumps_toml(settings), end="")
    settings.validate()
    if args.check:
        print(f"{args.config or 'defaults'}: valid")


def cmd_run(args, parser, job):
    from vid2vid import pipeline

    settings = apply_options(_base_settings(args), args, parser)
    result = pipeline.run(args.video, settings, workspace=getattr(args, "workspace", None), job=job)
    print(result.summary())


def cmd_demo(args, parser, job):
    from vid2vid import demo

    result = demo.run(output=args.output, cache=args.cache, job=job)
    print(result.summary())


def cmd_ui(args, parser, job):
    from vid2vid.ui import app

    app.launch(host=args.host, port=args.port, cache=args.cache)


def _lazy(module: str, func: str = "main") -> Callable:
    """A handler implemented in another module as `func(args, parser, job)`."""

    def handler(args, parser, job):
        import importlib

        return getattr(importlib.import_module(module), func)(args, parser, job)

    return handler


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vid2vid", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"vid2vid {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler, subparser=sp)
        return sp

    def common(sp, workspace_required: bool):
        sp.add_argument("-w", "--workspace", required=workspace_required, help="workspace folder")
        sp.add_argument("--config", help="settings TOML file (see `vid2vid config --dump`)")
        add_settings_options(sp, sp.prog.split()[-1], "run", skip=("depth", "tags", "upscale", "interpolate"))

    sp = command("probe", cmd_probe, "show a video's streams, size, fps, duration and frame count")
    sp.add_argument("video")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = command("extract", cmd_extract, "extract frames (and audio) into a workspace")
    sp.add_argument("video")
    common(sp, False)
    add_settings_options(sp, "extract", "extract")

    sp = command("delta", _stage_command("delta", "correct"), "compute frame deltas of the extracted frames")
    common(sp, True)

    sp = command("depth", _stage_command("depth", "depth"), "make depth masks of the extracted frames")
    common(sp, True)
    add_settings_options(sp, "depth", "depth")

    sp = command("tags", _stage_command("tags", "tags"), "tag the extracted frames (anime taggers)")
    common(sp, True)
    add_settings_options(sp, "tags", "tags")

    sp = command("img2img", _stage_command("img2img", "img2img"),
                 "successive img2img with sigma override and frame delta correction")
    common(sp, True)
    add_settings_options(sp, "img2img", "img2img")
    add_settings_options(sp, "img2img", "correct", skip=("method", "flow_strength", "flow_mask"))
    add_preset_option(sp)

    sp = command("correct", _lazy("vid2vid.stages.correct"),
                 "apply frame delta correction to any folder of generated frames")
    sp.add_argument("--source", required=True, help="folder of source frames")
    sp.add_argument("--generated", required=True, help="folder of generated frames")
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--depth", help="folder of depth masks (for depth masks)")
    sp.add_argument("--save-masks", help="folder to save the masks used")
    sp.add_argument("--resize", choices=config.RESIZE_MODES, default="just",
                    help="how the generated frames were fitted from the source frames (img2img's --resize): "
                         "the source motion is fitted the same way")
    sp.add_argument("--overwrite", action="store_true", help="replace outputs made with other settings")
    sp.add_argument("--config", help="settings TOML file")
    add_settings_options(sp, "correct", "correct", skip=("spatial_mask",))

    sp = command("fdc-debug", _lazy("vid2vid.fdc_debug"),
                 "PNG sheets to tune frame delta correction: mask grids over low-cut, one frame's correction")
    sp.add_argument("-w", "--workspace", help="workspace: defaults for --source, --generated and --depth")
    sp.add_argument("--source", help="folder of source frames (default WS/frames)")
    sp.add_argument("--generated", help="folder of generated frames (default WS/img2img)")
    sp.add_argument("--prev", help="folder holding the previous output frame (default: the generated folder)")
    sp.add_argument("--depth", help="folder of depth maps (default WS/depthmask)")
    sp.add_argument("--frame", type=int, required=True, help="frame number from 1 (2 or later for fdc and motion)")
    sp.add_argument("--sheet", choices=("fdc", "motion", "depth"), default="fdc",
                    help="fdc: one frame's correction; motion / depth: mask grid over low-cut")
    sp.add_argument("--tile-width", type=int, default=0, help="tile width in pixels (0: automatic)")
    sp.add_argument("-o", "--output", required=True, help="PNG file to write")
    sp.add_argument("--config", help="settings TOML file")
    add_settings_options(sp, "fdc-debug", "correct", skip=("method", "spatial_mask"))

    sp = command("upscale", _stage_command("upscale", "upscale"), "upscale the img2img frames (Real-ESRGAN)")
    common(sp, True)
    add_settings_options(sp, "upscale", "upscale")

    sp = command("interpolate", _stage_command("interpolate", "interpolate"), "interpolate frames (RIFE)")
    common(sp, True)
    add_settings_options(sp, "interpolate", "interpolate")

    sp = command("export", cmd_export, "encode a frame folder into a video (with the original audio)")
    common(sp, True)
    add_settings_options(sp, "export", "export")

    sp = command("run", cmd_run, "the whole pipeline: extract -> ... -> export")
    sp.add_argument("video")
    sp.add_argument("-w", "--workspace", help="workspace folder")
    sp.add_argument("--config", help="settings TOML file (see `vid2vid config --dump`)")
    for section in ("run", "extract", "depth", "tags", "img2img", "correct", "upscale", "interpolate", "export"):
        add_settings_options(sp, "run", section)
    add_preset_option(sp)

    sp = command("demo", cmd_demo, "the whole pipeline on a built-in sample with a tiny model")
    sp.add_argument("-o", "--output", help="output video path")
    sp.add_argument("--cache", default="vid2vid-cache", help="cache folder for the demo workspace")

    sp = command("ui", cmd_ui, "start the web UI")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=7860)
    sp.add_argument("--cache", default="vid2vid-cache")

    sp = command("sigmas", _lazy("vid2vid.diffusion.plot"), "plot every sigma schedule with the truncation point")
    sp.add_argument("--steps", type=int, default=20)
    sp.add_argument("--denoise", type=float, default=0.75)
    sp.add_argument("--sigma-min", type=float, default=0.1)
    sp.add_argument("--sigma-max", type=float, default=1.2)
    sp.add_argument("-o", "--output", required=True, help="PNG file to write")

    sp = command("size", _lazy("vid2vid.diffusion.sizes"), "recommend canvas sizes near an aspect ratio")
    sp.add_argument("width", type=int)
    sp.add_argument("height", type=int)

    sp = command("metrics", _lazy("vid2vid.metrics"), "temporal consistency and fidelity of an output")
    sp.add_argument("--source", required=True, help="source video or frame folder")
    sp.add_argument("output", help="output video or frame folder")
    sp.add_argument("--ref", help="reference frame folder for fidelity (e.g. uncorrected frames)")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--plot", help="write a per-frame plot (PNG)")

    sp = command("make-tiny-model", _lazy("vid2vid.diffusion.tiny"), "write a tiny random SD 1.x model")
    sp.add_argument("dir")
    sp.add_argument("--single-file", action="store_true", help="one original-layout .safetensors file")
    sp.add_argument("--tiny-vae", action="store_true",
                    help="write only a tiny TAESD-style VAE (AutoencoderTiny) for --vae: a folder, or with "
                         "--single-file one .safetensors")

    sp = command("config", cmd_config, "print or check settings")
    sp.add_argument("--dump", action="store_true", help="print all settings as TOML (the defaults without --config)")
    sp.add_argument("--check", action="store_true", help="validate a settings file")
    sp.add_argument("--config", help="settings TOML file")
    add_preset_option(sp)
    return p


# ---------------------------------------------------------------- entry point

def _install_signal_handlers(job: Job) -> None:
    """First Ctrl+C / SIGTERM: stop after the current frame. Second: stop now."""

    def handler(signum, frame):
        if job.cancel.is_set():
            raise KeyboardInterrupt
        job.cancel.set()
        print("\nstopping after the current frame (press Ctrl+C again to stop now)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("VID2VID_DEBUG") == "1"
    job = Job(on_progress=ConsoleProgress(), log=lambda text: print(text, file=sys.stderr))
    _install_signal_handlers(job)
    try:
        args.handler(args, args.subparser, job)
        return 0
    except BrokenPipeError:          # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Interrupted, KeyboardInterrupt):
        print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        return 130
    except Vid2VidError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
        if debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details and report it)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
