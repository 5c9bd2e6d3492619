"""The Gradio demo. It only wires widgets to `TalkingFacePipeline`; every stage lives in vasa_core/ and safety/.

    make demo            # or: .venv/bin/python app.py   -> http://127.0.0.1:7860
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402
import matplotlib  # noqa: E402

from vasa_core import InputError, TalkingFacePipeline, __version__  # noqa: E402
from vasa_core.motion import EMOTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parent
DEFAULT_IMAGE = str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
DEFAULT_AUDIO = str(ROOT / "assets" / "default_speech.ogg")
MAX_AUDIO_S = float(os.environ.get("VASA_MAX_AUDIO_S", "60"))
OUT_DIR = Path(tempfile.gettempdir()) / "vasa_outputs"
log = logging.getLogger("vasa.app")

_PIPELINES: dict[int, TalkingFacePipeline] = {}


def pipeline(size: int) -> TalkingFacePipeline:
    if size not in _PIPELINES:
        _PIPELINES[size] = TalkingFacePipeline(size=size)
    return _PIPELINES[size]


def generate(image, audio, size, seed, gaze_x, gaze_y, distance, emotion, emotion_weight, motion_scale,
             progress=gr.Progress()):
    """Generate tab: portrait + audio + controls -> (video path, status text). Errors become messages."""
    if not image:
        raise gr.Error("Please upload a portrait (JPEG, PNG or WebP).")
    if not audio:
        raise gr.Error("Please upload or record an audio clip (speech or singing).")
    t0 = time.perf_counter()
    try:
        pipe = pipeline(int(size))
        progress(0.05, desc="Analysing the portrait")
        pipe.prepare(image)
        progress(0.15, desc="Reading the audio")
        clip = pipe.load_audio(audio, max_seconds=MAX_AUDIO_S)
        progress(0.25, desc="Generating motion")
        motion = pipe.motion(clip, seed=int(seed), gaze=(float(gaze_x), float(gaze_y)), distance=float(distance),
                             emotion=emotion, emotion_weight=float(emotion_weight), motion_scale=float(motion_scale))
        progress(0.35, desc="Rendering")
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        out = OUT_DIR / f"talking_{int(time.time() * 1000)}.mp4"
        pipe.write(image, clip, out, motion=motion)
    except InputError as exc:
        raise gr.Error(str(exc)) from None
    except Exception:  # never a traceback in the UI; the log keeps it for the operator
        log.exception("generation failed")
        raise gr.Error("Something went wrong while generating the video. Please try another portrait or "
                       "audio clip; the operator's log has the details.") from None
    dt = time.perf_counter() - t0
    status = (f"{len(motion)} frames ({clip.duration:.1f} s of audio) in {dt:.1f} s - "
              f"{clip.duration / dt:.2f}x real time; mouth model: {pipe.mouth.name}")
    return str(out), status


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="VASA studio: talking portraits") as demo:
        gr.Markdown(f"# Talking portrait studio (v{__version__})\nOne portrait + one speech or singing clip "
                    "-> a talking-head video, generated on this machine. The default example animates "
                    "Grace Hopper's public-domain US Navy portrait with speech this project synthesised.")
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(label="Portrait", type="filepath", value=DEFAULT_IMAGE, height=320)
                    audio = gr.Audio(label="Speech or singing", type="filepath", value=DEFAULT_AUDIO)
                    with gr.Accordion("Controls", open=False):
                        size = gr.Dropdown([256, 384, 512, 768, 1024], value=512, label="Output size (pixels)")
                        seed = gr.Number(value=0, precision=0, label="Seed (same seed, same video)")
                        gaze_x = gr.Slider(-20, 20, value=0, step=1, label="Gaze left/right (degrees)")
                        gaze_y = gr.Slider(-15, 15, value=0, step=1, label="Gaze down/up (degrees)")
                        distance = gr.Slider(0.7, 1.4, value=1.0, step=0.05, label="Head distance (1 = as framed)")
                        emotion = gr.Dropdown(list(EMOTIONS), value="neutral", label="Emotion")
                        emotion_weight = gr.Slider(0, 1, value=0.6, step=0.05, label="Emotion intensity")
                        motion_scale = gr.Slider(0, 2, value=1.0, step=0.1, label="Head motion (0 = still)")
                    button = gr.Button("Generate", variant="primary")
                with gr.Column():
                    video = gr.Video(label="Result", autoplay=True)
                    status = gr.Textbox(label="Status", interactive=False)
            button.click(generate, [image, audio, size, seed, gaze_x, gaze_y, distance, emotion, emotion_weight,
                                    motion_scale], [video, status], api_name="generate")
    return demo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    build_demo().queue(default_concurrency_limit=1).launch(
        server_name=os.environ.get("VASA_HOST", "127.0.0.1"), server_port=int(os.environ.get("VASA_PORT", "7860")),
        show_error=True)
