"""The Gradio demo. It only wires widgets to the safety gate and `TalkingFacePipeline`; every stage lives in
vasa_core/ and safety/.

    make demo            # or: .venv/bin/python app.py   -> http://127.0.0.1:7860

Tabs: Generate (consent + likeness gate, then generation; every clip watermarked, signed and logged),
Detect (watermark + C2PA manifest + audit record of any clip), Responsible AI (what this demo does and why).
Environment: VASA_PORT, VASA_HOST, VASA_MAX_AUDIO_S (default 60), VASA_LABEL (visible label, default 1),
VASA_DATA_DIR (audit log, gallery, demo certificate).
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

from safety.consent import CONSENT_CHOICES, CONSENT_PUBLIC_DOMAIN  # noqa: E402
from safety.gate import check_request  # noqa: E402
from vasa_core import InputError, TalkingFacePipeline, __version__  # noqa: E402
from vasa_core.motion import EMOTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parent
DEFAULT_IMAGE = str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
DEFAULT_AUDIO = str(ROOT / "assets" / "default_speech.ogg")
MAX_AUDIO_S = float(os.environ.get("VASA_MAX_AUDIO_S", "60"))
LABEL = os.environ.get("VASA_LABEL", "1") != "0"
OUT_DIR = Path(tempfile.gettempdir()) / "vasa_outputs"
log = logging.getLogger("vasa.app")

_PIPELINES: dict[int, TalkingFacePipeline] = {}


def pipeline(size: int) -> TalkingFacePipeline:
    if size not in _PIPELINES:
        _PIPELINES[size] = TalkingFacePipeline(size=size)
    return _PIPELINES[size]


def generate(image, audio, consent, name, selfie, face_index, size, seed, gaze_x, gaze_y, distance, emotion,
             emotion_weight, motion_scale, progress=gr.Progress()):
    """Generate tab: gate (validation, consent, likeness), then portrait + audio + controls -> video.

    Returns (video path, status text). Every refusal and error becomes a one-sentence message.
    """
    if not image:
        raise gr.Error("Please upload a portrait (JPEG, PNG or WebP).")
    if not audio:
        raise gr.Error("Please upload or record an audio clip (speech or singing).")
    t0 = time.perf_counter()
    try:
        progress(0.02, desc="Safety check")
        face = int(face_index) if face_index not in (None, "") and int(face_index) >= 0 else None
        decision = check_request(image, audio, consent, name, selfie=selfie or None, face_index=face,
                                 max_audio_s=MAX_AUDIO_S)
        if not decision.allowed:
            raise gr.Error(decision.reason)
        face_box = None
        if decision.chosen_face is not None and decision.faces:
            face_box = tuple(decision.faces[decision.chosen_face]["box"])
        rgb = decision.image.rgb                     # the validated, re-encoded pixels: nothing else is used
        pipe = pipeline(int(size))
        progress(0.1, desc="Analysing the portrait")
        pipe.prepare(rgb, face_box)
        progress(0.2, desc="Reading the audio")
        clip = pipe.load_audio(audio, max_seconds=MAX_AUDIO_S)
        progress(0.3, desc="Generating motion")
        motion = pipe.motion(clip, seed=int(seed), gaze=(float(gaze_x), float(gaze_y)), distance=float(distance),
                             emotion=emotion, emotion_weight=float(emotion_weight), motion_scale=float(motion_scale))
        progress(0.4, desc="Rendering, watermarking, signing")
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        out = pipe.write(rgb, clip, OUT_DIR / f"talking_{int(time.time() * 1000)}.mp4", motion=motion,
                         face_box=face_box, request_id=decision.request_id, label=LABEL)
    except gr.Error:
        raise
    except InputError as exc:
        raise gr.Error(str(exc)) from None
    except Exception:  # never a traceback in the UI; the log keeps it for the operator
        log.exception("generation failed")
        raise gr.Error("Something went wrong while generating the video. Please try another portrait or "
                       "audio clip; the operator's log has the details.") from None
    dt = time.perf_counter() - t0
    selfie_note = ""
    if decision.selfie is not None:
        selfie_note = f" Selfie check: {'match' if decision.selfie.match else 'no match'}."
    status = (f"{len(motion)} frames ({clip.duration:.1f} s of audio) in {dt:.1f} s - "
              f"{clip.duration / dt:.2f}x real time; mouth model: {pipe.mouth.name}. Watermark id {out.payload}, "
              f"C2PA manifest signed with the demo certificate, request {decision.request_id}.{selfie_note}")
    return str(out.path), status


def detect(clip):
    """Detect tab: watermark, C2PA manifest and audit record of an uploaded clip."""
    if not clip:
        raise gr.Error("Please upload a video clip to check.")
    try:
        from safety.verify import verify
        report = verify(clip)
    except Exception:
        log.exception("verify failed")
        raise gr.Error("The clip could not be checked; it may not be a readable video file.") from None
    return report.summary(), report.to_dict()


RESPONSIBLE_AI = """
## Responsible AI
**What this is.** A research demo of audio-driven talking faces (in the spirit of Microsoft's VASA-1). It can
make a real person appear to say things they never said. It runs offline; nothing is sent anywhere.

**Before anything is generated** every request passes one gate: the files are checked by content and re-encoded;
you must say whose face it is and type your name; every face in the picture is compared with a gallery of
protected people kept by the operator (a match refuses the request without saying who); the request is written
to an append-only audit log (hashes only, never the images).

**Every output** carries an invisible watermark (a random id that keys the audit log, recoverable after
re-encoding, scaling, cropping and cutting), a signed C2PA content credential that says it was made by an AI
generator (signed with this demo's own certificate, so viewers will call the signer untrusted), and, in this
hosted demo, a visible "AI-generated" label. The Detect tab and `python -m safety verify CLIP` check any clip.

**Limits, honestly.** Likeness screening only knows the people in its gallery and was measured on very few
identities; a watermark can be destroyed by heavy processing; a detector score is evidence, not proof. Do not
use this to deceive, harass, or impersonate anyone.
"""


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
                    consent = gr.Radio(list(CONSENT_CHOICES), value=CONSENT_PUBLIC_DOMAIN,
                                       label="Whose face is this? (required)")
                    name = gr.Textbox(label="Your name (required, recorded in the audit log)",
                                      value="Demo visitor")
                    with gr.Accordion("Verify it's me (optional): a selfie or second photo of you", open=False):
                        selfie = gr.Image(label="Selfie", type="filepath", sources=["upload", "webcam"], height=200)
                    face_index = gr.Number(value=-1, precision=0,
                                           label="Face to animate in a group photo (0 = leftmost; -1 = only face)")
                    with gr.Accordion("Controls", open=False):
                        size = gr.Dropdown([256, 384, 512, 768, 1024], value=512, label="Output size (pixels)")
                        seed = gr.Number(value=0, precision=0, label="Seed (same seed, same motion)")
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
            button.click(generate, [image, audio, consent, name, selfie, face_index, size, seed, gaze_x, gaze_y,
                                    distance, emotion, emotion_weight, motion_scale], [video, status],
                         api_name="generate")
        with gr.Tab("Detect"):
            gr.Markdown("Check any clip for this product's invisible watermark, its C2PA content credential and "
                        "this installation's audit record.")
            clip = gr.Video(label="Clip to check")
            check = gr.Button("Check")
            verdict = gr.Textbox(label="Verdict", interactive=False)
            details = gr.JSON(label="Details")
            check.click(detect, [clip], [verdict, details], api_name="detect")
        with gr.Tab("Responsible AI"):
            gr.Markdown(RESPONSIBLE_AI)
    return demo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    build_demo().queue(default_concurrency_limit=1).launch(
        server_name=os.environ.get("VASA_HOST", "127.0.0.1"), server_port=int(os.environ.get("VASA_PORT", "7860")),
        show_error=True)
