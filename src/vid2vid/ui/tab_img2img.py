"""Tab 3: successive img2img. The settings sections (`img2img_sections`), Generate (batch or one debug
frame), the live preview of the running stage (newest painted frame beside its source), the painted
and propagated strips, and the FDC debugger."""
from __future__ import annotations

from typing import Any

from vid2vid.core.errors import BadInput, Vid2VidError
from vid2vid.ui import actions, controlnet_section, frames, grid_section, img2img_sections, ip_adapter_section, paths
from vid2vid.ui.img2img_sections import SIGMA_KEYS
from vid2vid.ui.page import Page, said
from vid2vid.ui.runner import error_message

MODES = [("Batch: every frame", "batch"), ("Single frame (debug)", "single")]
LIVE_TASKS = ("img2img", "propagate")


def tab_img2img(p: Page):
    """Build tab 3; returns the function that wires its events."""
    gr = p.gr
    with gr.Tab("3: Successive img2img", id="tab-img2img", elem_id="tab-img2img"):
        top = img2img_sections.model_and_prompt(p)
        sigma_plot, sigma_preview = img2img_sections.sigma_section(p)
        cn = img2img_sections.settings_sections(p)
        with gr.Row():
            mode = gr.Radio(MODES, value="batch", label="Mode", elem_id="v2v-mode")
            debug_frame = gr.Number(value=1, precision=0, label="Debug frame (single mode)",
                                    elem_id="v2v-debug-frame")
            gen_btn = gr.Button("Generate", variant="primary", elem_id="v2v-generate-btn")
        gen_note = p.note("generate")
        out = outputs(p)
        with gr.Row():
            fdc_frame = gr.Number(value=2, precision=0, label="FDC debugger: frame (2 or later)",
                                  elem_id="v2v-fdc-frame")
            fdc_btn = gr.Button("FDC debugger sheet", elem_id="v2v-fdc-btn")
        fdc_note = p.note("fdc")
        fdc_img = gr.Image(label="FDC debugger", type="numpy", interactive=False, elem_id="v2v-fdc")
        grid_w = grid_section.section(p)              # the settings sweep

    def wire() -> None:
        W = p.W
        sigma_inputs = [W[k] for k in SIGMA_KEYS]
        # one event for all the fields: runs one at a time and, while one runs, only the latest change waits
        # (always_last), so the preview ends on the fields' last values, never on an older change
        gr.on([W[k].change for k in SIGMA_KEYS], lambda *v: img2img_sections.sigma_views(p, v), sigma_inputs,
              [sigma_plot, sigma_preview], trigger_mode="always_last", concurrency_limit=1, show_progress="hidden")
        p.page.load(lambda *v: img2img_sections.sigma_views(p, v), sigma_inputs, [sigma_plot, sigma_preview])
        shown = [out["single"], out["sigmas"], out["strip"], out["propagated"]]
        def generate(ws, m, f, *v):          # gradio streams a generator function's yields, not a lambda's
            yield from on_generate(p, ws, m, f, v)

        def fdc(ws, f, *v):
            yield from on_fdc(p, ws, f, v)

        gen_btn.click(generate, [p.ws_dd, mode, debug_frame] + p.widgets, p.head(gen_note) + shown)
        fdc_btn.click(fdc, [p.ws_dd, fdc_frame] + p.widgets, p.head(fdc_note) + [fdc_img])
        grid_section.wire(grid_w, p)
        ip_adapter_section.wire(cn["ip"], root=p.root, ws=p.ws_dd)
        controlnet_section.wire(cn, root=p.root, ws=p.ws_dd, frame=debug_frame, widgets=p.widgets,
                                settings_of=p.settings_of, drive=p.drive, head=p.head(cn["note"]))
        models = [W[k] for k in p.model_fields] + cn["models"] + [cn["ip"]["model"]]
        top["refresh"].click(lambda: img2img_sections.refresh_models(p, cn), None, models)
        keys = img2img_sections.preset_keys()
        top["preset"].change(lambda n: img2img_sections.preset_values(p, n), top["preset"], [W[k] for k in keys])
        live_outs = [out["source"], out["painted"], out["caption"], out["strip"], out["propagated"], out["seen"]]
        pages = [p.strips["img2img"][1], p.strips["propagate"][1]]
        p.timer.tick(lambda ws, a, b, seen: on_tick(p, ws, a, b, seen), [p.ws_dd, *pages, out["seen"]],
                          live_outs, show_progress="hidden", concurrency_limit=None)
    return wire


def outputs(p: Page) -> dict[str, Any]:
    """The debug frame, the live preview, the strips of painted and propagated frames."""
    gr = p.gr
    with gr.Row():
        single = gr.Image(label="Debug frame (raw generated)", type="filepath", interactive=False,
                          elem_id="v2v-single-image")
        sigmas = gr.Textbox(label="Real sigmas used", lines=4, interactive=False, elem_id="v2v-real-sigmas")
    with gr.Row(elem_id="v2v-live"):
        source = gr.Image(label="Live: source frame", type="filepath", interactive=False, height=260,
                          elem_id="v2v-live-source")
        painted = gr.Image(label="Live: newest painted frame", type="filepath", interactive=False, height=260,
                           elem_id="v2v-live-painted")
    caption = gr.Markdown("", elem_id="v2v-live-caption")
    strip = p.gallery("img2img", "v2v-img2img-strip", 180)
    propagated = p.gallery("propagate", "v2v-propagate-strip", 180)
    return {"single": single, "sigmas": sigmas, "source": source, "painted": painted, "caption": caption,
            "strip": strip, "propagated": propagated, "seen": gr.State(False)}


def on_tick(p: Page, ws_name: str | None, page_a: Any, page_b: Any, seen: bool) -> list[Any]:
    """While a painting stage runs (and once after it ends): the newest painted frame beside its source,
    and the strips; otherwise nothing is sent."""
    skip = [p.gr.skip()] * 5
    task = p.runner.current
    running = task is not None and task.name in LIVE_TASKS and not task.done.is_set()
    if not ws_name or not (running or seen):
        return skip + [False]
    try:
        ws = paths.workspace(p.root, ws_name)
    except Vid2VidError:
        return skip + [False]
    now = frames.live(ws)
    shown = [p.gr.skip()] * 3 if now is None else \
        [str(now.source) if now.source else None, str(now.painted), now.caption()]
    return shown + [p.strip(ws_name, "img2img", page_a), p.strip(ws_name, "propagate", page_b), running]


def on_generate(p: Page, ws_name: str, mode: str, frame: Any, values: tuple):
    gr = p.gr
    single = int(frame or 0) if mode == "single" else 0
    if mode == "single" and single < 1:
        yield said(error_message(BadInput(f"debug frame {single} is not a frame; frames count from 1"))) \
            + [gr.skip()] * 4
        return

    def work(job):
        return actions.img2img(p.root, ws_name, p.settings_of(values, "img2img"), job, p.models, single=single)

    def render(info):
        from vid2vid.diffusion.schedules import format_sigmas
        sig = format_sigmas(info.get("real_sigmas", []))
        if single:
            return (f"Done: img2img single frame {single}, {info.get('sampler_steps')} sampler steps",
                    [info["output"], sig, gr.skip(), gr.skip()])
        return (f"Done: img2img batch, {info.get('frames')} frames",
                [gr.skip(), sig, p.strip(ws_name, "img2img"), p.strip(ws_name, "propagate")])
    yield from p.drive("img2img", work, render, 4)


def on_fdc(p: Page, ws_name: str, frame: Any, values: tuple):
    def work(job):
        return actions.fdc_sheet(p.root, ws_name, int(frame or 0), p.settings_of(values, "fdc"))
    yield from p.drive("FDC debugger", work,
                       lambda sheet: (f"Done: FDC debugger sheet of frame {int(frame)}", [sheet]), 1)
