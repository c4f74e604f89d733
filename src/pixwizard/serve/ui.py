"""The web UI: Gradio Blocks mounted at ``/ui`` on the API's FastAPI app, sharing its engine.

Upload, paste or drop an image; type an instruction (Enter runs it) or pick an example chip of a
domain; the routed task and its confidence show as you type and the task box overrides it;
steps, guidance, seed, working size and shifted passes sit under "Advanced". While sampling a progress bar runs;
the result shows beside the input as a before/after slider, with downloads for the image and
every typed output, and a history of this session's results. Every control is a native button,
input or select, so the page works with the keyboard alone (Tab, Enter, Space, arrows).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import TimeoutError as FutureTimeout

from pixwizard.imageio import ImageError, load_image
from pixwizard.serve.config import ServeConfig
from pixwizard.serve.engine import Busy, Engine, JobOptions, JobResult, Unavailable
from pixwizard.serve.examples import DOMAIN_EXAMPLES
from pixwizard.tasks.registry import REGISTRY

AUTO = "auto"
HISTORY = 24
SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
# history thumbnails keep their size however few there are (Gradio stretches them to fill the row)
CSS = "#history .grid-container { grid-template-columns: repeat(auto-fill, minmax(120px, 160px)) !important; }"


def route_markdown(engine: Engine, instruction: str) -> str:
    """One line about where an instruction goes (empty for an empty instruction)."""
    if not instruction or not instruction.strip():
        return ""
    route = engine.route(instruction)
    if route.no_match:
        return f"No task matches this well: {route.message()}. Pick the task below for typed outputs."
    line = f"Routed task: **{route.task}** ({REGISTRY[route.task].title}), confidence {route.confidence:.2f}"
    if route.low_confidence:
        close = ", ".join(f"{t} {p:.2f}" for t, p in route.alternatives)
        line += f"  \nLow confidence: it may also mean {close}. Pick the task below to be sure."
    return line


def result_markdown(jr: JobResult) -> str:
    r = jr.result
    how = "given" if jr.route is None else f"routed, confidence {jr.route.confidence:.2f}"
    lines = [f"**{jr.task or 'no task matched'}** ({how}) · {r.image.shape[1]}x{r.image.shape[0]} · "
             f"{r.steps} steps · {r.shifts} pass{'es' if r.shifts > 1 else ''}"
             + (f" · {r.tiles} tiles" if r.tiles > 1 else "") + f" · seed {r.seed} · {jr.run_s:.2f} s"]
    if r.decoded is not None and r.decoded.boxes is not None:
        lines.append(f"boxes (xyxy pixels): {[[round(v) for v in b] for b in r.decoded.boxes]}")
    kinds = [k for k in jr.files if k != "image"]
    if kinds:
        lines.append("typed outputs: " + ", ".join(kinds))
    if r.untrained:
        lines.append("note: the model is untrained; the output is not a real answer yet")
    lines += [f"note: {n}" for n in r.notes]
    return "  \n".join(lines)


def build_ui(engine: Engine, config: ServeConfig):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    flow = engine.pipe.config.flow
    max_pixels = min(config.max_pixels or engine.pipe.config.max_pixels, engine.pipe.config.max_pixels)
    task_choices = [("auto: route the instruction", AUTO)] + [(f"{s.title} ({s.id})", s.id) for s in REGISTRY.values()]

    def route(instruction: str) -> str:
        try:
            return route_markdown(engine, instruction)
        except ValueError as e:
            return str(e)

    def run(image_path, instruction, task, steps, text_guidance, image_guidance, seed, size, shifts, tile, history,
            progress=gr.Progress()):
        if not image_path:
            raise gr.Error("Add an image first: upload, paste or drop one.")
        if not instruction or not instruction.strip():
            raise gr.Error("Type an instruction, e.g. \"remove the noise\".")
        try:
            array = load_image(image_path, max_pixels=max_pixels)
            options = JobOptions(instruction=instruction.strip(), task=None if task in (None, AUTO) else task,
                                 steps=int(steps) or None, text_guidance=float(text_guidance),
                                 image_guidance=float(image_guidance), seed=int(seed or 0),
                                 size=int(size) if size else None, shifts=int(shifts) or None,
                                 tile=int(tile) if tile else None)
            job = engine.submit(array, options)
        except (ImageError, ValueError, Busy, Unavailable) as e:
            raise gr.Error(str(e)) from None
        deadline = time.monotonic() + config.timeout_s
        progress(0.0, desc="waiting in the queue")
        while True:
            try:
                jr = job.future.result(timeout=0.1)
                break
            except FutureTimeout:
                if time.monotonic() > deadline:
                    job.cancel()
                    raise gr.Error(f"The request did not finish within {config.timeout_s:g} s.") from None
                desc = "sampling" if job.progress > 0 else f"waiting in the queue ({engine.waiting} waiting)"
                progress(job.progress, desc=desc)
            except Exception as e:
                raise gr.Error(str(e) or type(e).__name__) from None
        result_path = str(jr.files["image"])
        history = ([(result_path, f"{instruction.strip()} -> {jr.task or 'no task'}")] + list(history or []))[:HISTORY]
        routed = route_markdown(engine, instruction) if jr.route is not None else f"Task: **{jr.task}** (given)"
        return ((image_path, result_path), result_markdown(jr), [str(p) for p in jr.files.values()], history,
                history, routed)

    with gr.Blocks(title="PixWizard", analytics_enabled=False) as demo:
        gr.Markdown("# PixWizard\nOne image and one instruction in, an image and its typed outputs back. "
                    "Upload, paste or drop an image, say what to do, press Enter or **Run**.")
        history_state = gr.State([])
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Input image (upload, paste or drop)", type="filepath",
                                 sources=["upload", "clipboard"], height=360, elem_id="input-image")
                instruction = gr.Textbox(label="Instruction", placeholder='e.g. "remove the rain" (Enter runs it)',
                                         max_lines=1, elem_id="instruction")
                routed = gr.Markdown(elem_id="routed")
                with gr.Accordion("Examples by domain", open=True):
                    for domain, texts in DOMAIN_EXAMPLES.items():
                        with gr.Row(equal_height=True):
                            gr.Markdown(f"**{domain}**", elem_classes=["domain-label"])
                            for text in texts:
                                chip = gr.Button(text, size="sm", variant="secondary", min_width=60)
                                chip.click(lambda t=text: t, outputs=instruction, show_progress="hidden")
                task = gr.Dropdown(task_choices, value=AUTO, label="Task (override the routing)", elem_id="task")
                with gr.Accordion("Advanced", open=False):
                    steps = gr.Slider(0, config.max_steps, value=0, step=1, elem_id="steps",
                                      label=f"Steps (0 = the model's default for the task; {flow.steps} unless the "
                                            "task has its own)")
                    text_guidance = gr.Number(flow.text_guidance, label="Text guidance", minimum=0, maximum=50)
                    image_guidance = gr.Number(flow.image_guidance, label="Image guidance", minimum=0, maximum=50)
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="seed")
                    size = gr.Number(0, label="Working size: longest side in pixels (0 = the image's own)",
                                     precision=0, minimum=0, maximum=config.max_size)
                    shifts = gr.Radio([("task default", 0), ("1", 1), ("2", 2), ("4", 4)], value=0, elem_id="shifts",
                                      label="Shifted passes: averaged runs at half-patch offsets (hide the patch "
                                            "grid; each costs one run)")
                    tile = gr.Number(0, label="Tiles: run in overlapping tiles of this many pixels at the image's "
                                              "own resolution (0 = off: large images run downscaled)",
                                     precision=0, minimum=0, maximum=1024, elem_id="tile")
                run_button = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after", type="filepath", height=360, elem_id="result")
                status = gr.Markdown(elem_id="status")
                downloads = gr.File(label="Downloads: the image and its typed outputs", file_count="multiple",
                                    interactive=False, elem_id="downloads")
        gallery = gr.Gallery(label="History (this session)", columns=8, height=220, object_fit="contain",
                             preview=False, elem_id="history")

        instruction.change(route, instruction, routed, trigger_mode="always_last", show_progress="hidden")
        gr.on([run_button.click, instruction.submit], run,
              inputs=[image, instruction, task, steps, text_guidance, image_guidance, seed, size, shifts, tile,
                      history_state],
              outputs=[slider, status, downloads, gallery, history_state, routed])
    demo.queue(max_size=config.queue_size)
    return demo


def mount_ui(app, engine: Engine, config: ServeConfig) -> None:
    """Mount the UI at ``/ui``; Gradio's uploads obey the same byte limit as the API."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: nothing phones home
    import gradio as gr

    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)  # no web fonts: works offline
    gr.mount_gradio_app(app, build_ui(engine, config), path="/ui", max_file_size=config.max_upload_bytes,
                        allowed_paths=[str(engine.results_dir)], ssr_mode=False, theme=theme, css=CSS,
                        footer_links=["api"])
