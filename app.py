"""The Gradio demo. It only wires widgets to the safety layer and `TalkingFacePipeline`; every stage lives in
vasa_core/ and safety/.

    make demo            # or: .venv/bin/python app.py   -> http://127.0.0.1:7860

Tabs: Generate (consent + likeness gate, then generation; every clip watermarked, signed and logged), Live
(microphone in, talking portrait out while you speak, same gate), Detect (watermark, content credential and the
deepfake detector, public facts only), Detector report, Responsible AI.

Hosting knobs (environment variables, safe defaults: README "Hosting", `serving.limits.HostLimits`): VASA_HOST,
VASA_PORT, VASA_DATA_DIR, VASA_LABEL, VASA_QUEUE_SIZE, VASA_CLIENT_CONCURRENT, VASA_CLIENT_PER_MINUTE,
VASA_MAX_UPLOAD_MB, VASA_MAX_AUDIO_S, VASA_MAX_IMAGE_MP, VASA_MAX_SIZE, VASA_GENERATE_TIMEOUT_S,
VASA_DETECT_TIMEOUT_S, VASA_DETECT_MAX_MP, VASA_DETECT_MAX_FRAMES, VASA_OUTPUT_TTL_S, VASA_CLEAN_EVERY_S,
VASA_CLIENT_LIGHT_PER_MINUTE, VASA_UPLOAD_MB_PER_MINUTE, VASA_UPLOAD_TTL_S, VASA_TRUST_PROXY, VASA_PROXY_IPS,
VASA_FRAME_ANCESTORS; VASA_DEFAULT_AUDIO (the example's speech, default assets/default_speech.ogg); VASA_CACHE_DIR
(Gradio's upload and result cache, default a private folder in the system's temporary directory, so that the
paths Gradio shows in /config and in its answers never reveal the data directory).
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from safety.datadir import data_dir

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
PUBLIC_DIR = data_dir() / "public"                        # what may be served: results
OUT_DIR = PUBLIC_DIR / "outputs"


def _cache_dir() -> Path:
    """Gradio's upload and result cache: VASA_CACHE_DIR, else a private folder in the system's temporary
    directory named after a hash of the data directory (one per installation; its path shows nothing of it)."""
    if os.environ.get("VASA_CACHE_DIR"):
        return Path(os.environ["VASA_CACHE_DIR"])
    tag = hashlib.sha256(str(data_dir().resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"vasa-cache-{os.getuid() if hasattr(os, 'getuid') else 0}-{tag}"


os.environ.setdefault("GRADIO_TEMP_DIR", str(_cache_dir()))
CACHE_DIR = Path(os.environ["GRADIO_TEMP_DIR"])
CACHE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)

import gradio as gr  # noqa: E402
import matplotlib  # noqa: E402

from safety.audit import AuditLog  # noqa: E402
from safety.consent import CONSENT_CHOICES, CONSENT_PUBLIC_DOMAIN, EXAMPLE_NAME  # noqa: E402
from safety.gate import check_request  # noqa: E402
from serving.guard import last_refusal, remember_refusal  # noqa: E402
from serving.limits import HostLimits, JobTimeout, run_with_timeout  # noqa: E402
from serving.live import LiveSession  # noqa: E402
from serving.uploads import MSG_UPLOAD_EXPIRED, UploadLedger  # noqa: E402
from serving.widgets import Choice, IntChoice, RawAudio, RawImage, RawNumber, RawSlider, RawVideo  # noqa: E402
from safety.publish import build_pipeline  # noqa: E402
from vasa_core import ASSETS, InputError, TalkingFacePipeline, __version__  # noqa: E402
from vasa_core.motion import CONTROL_NAMES, CONTROL_RANGES, EMOTIONS  # noqa: E402
from vasa_core.audio import Audio  # noqa: E402
from vasa_core.pipeline import OUTPUT_SAMPLE_RATE  # noqa: E402

DEFAULT_IMAGE = str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
DEFAULT_AUDIO = os.environ.get("VASA_DEFAULT_AUDIO") or str(ASSETS / "default_speech.ogg")
EXAMPLE_DIR = ASSETS / "examples"           # made by scripts/make_examples.py (espeak-ng speech)
# each example carries its own attestation (public domain, EXAMPLE_NAME), valid only with its own portrait
EXAMPLES = [[DEFAULT_IMAGE, DEFAULT_AUDIO, CONSENT_PUBLIC_DOMAIN, EXAMPLE_NAME],
            [str(EXAMPLE_DIR / "hopper_painting.jpg"), str(EXAMPLE_DIR / "speech_en.ogg"), CONSENT_PUBLIC_DOMAIN,
             EXAMPLE_NAME],
            [DEFAULT_IMAGE, str(EXAMPLE_DIR / "speech_de.ogg"), CONSENT_PUBLIC_DOMAIN, EXAMPLE_NAME],
            [str(EXAMPLE_DIR / "hopper_painting.jpg"), str(EXAMPLE_DIR / "speech_de.ogg"), CONSENT_PUBLIC_DOMAIN,
             EXAMPLE_NAME]]
LIMITS = HostLimits.from_env()
MAX_AUDIO_S = LIMITS.audio_s
LABEL = os.environ.get("VASA_LABEL", "1") != "0"
SIZES = [s for s in (256, 384, 512, 768, 1024) if s <= LIMITS.max_size]
JOB_APIS = ("generate", "detect", "live_start")            # the jobs the per-client limits count
LIGHT_APIS = ("faces", "detector_report")                  # lighter CPU calls, metered per client too
UPLOADS = UploadLedger(None, LIMITS.upload_ttl_s)          # `serve` hands it Gradio's set of uploads


def _sha256_file(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


#: The portraits the example's own attestation (public domain, EXAMPLE_NAME) is valid for, by content.
EXAMPLE_IMAGES = frozenset(filter(None, (_sha256_file(row[0]) for row in EXAMPLES)))
log = logging.getLogger("vasa.app")

_PIPELINES: dict[int, TalkingFacePipeline] = {}
_PIPELINE_LOCK = threading.Lock()
_WARM = threading.Event()   # set while no warm-up runs (`warm_up`); requests that need the models wait for it
_WARM.set()


def pipeline(size: int) -> TalkingFacePipeline:
    with _PIPELINE_LOCK:
        if size not in _PIPELINES:
            _PIPELINES[size] = build_pipeline(size=size)
        return _PIPELINES[size]


def refuse(sentence: str) -> gr.Error:
    """A refusal for the visitor: one sentence, no traceback in the server log."""
    return gr.Error(sentence, print_exception=False)


def _number(value, name: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise refuse(f"The {name} must be a number.") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise refuse(f"The {name} must lie between {lo:g} and {hi:g}.")
    return x


def _controls(size, seed, gaze_x, gaze_y, distance, emotion, emotion_weight, motion_scale) -> tuple[int, dict]:
    """The generation controls, checked: (size, controls for the pipeline). Refuses in one sentence."""
    if size not in SIZES:
        raise refuse(f"The output size must be one of {', '.join(map(str, SIZES))} pixels.")
    if emotion not in EMOTIONS:
        raise refuse(f"The emotion must be one of: {', '.join(EMOTIONS)}.")
    def checked(value, name: str) -> float:
        return _number(value, CONTROL_NAMES[name], *CONTROL_RANGES[name])
    return int(size), dict(seed=int(_number(seed, "seed", 0, 2 ** 31 - 1)),
                           gaze=(checked(gaze_x, "gaze_x"), checked(gaze_y, "gaze_y")),
                           distance=checked(distance, "distance"), emotion=emotion,
                           emotion_weight=checked(emotion_weight, "emotion_weight"),
                           motion_scale=checked(motion_scale, "motion_scale"))


def _face_index(face_index) -> int | None:
    if face_index is None or (isinstance(face_index, str) and not face_index.strip()):
        return None
    i = int(_number(face_index, "face number", -1, 999))
    return None if i < 0 else i


def _upload(path, what: str) -> str | None:
    """An uploaded file's path, refused in one sentence when it is not a path or the upload expired."""
    if path is None or path == "":
        return None
    if not isinstance(path, str):
        raise refuse(f"The {what} must be an uploaded file.")
    if UPLOADS.was_swept(path):
        raise refuse(MSG_UPLOAD_EXPIRED.format(minutes=LIMITS.upload_ttl_s / 60))
    return path


@contextlib.contextmanager
def _logged(api: str, image=None, consent=None, name=None):
    """A block in which a refusal (gr.Error) is also written to the audit log, as the gate's refusals are."""
    try:
        yield
    except gr.Error as exc:
        from vasa_core.validate import MAX_IMAGE_BYTES, input_sha256
        try:
            sha = input_sha256(image, MAX_IMAGE_BYTES) if isinstance(image, str) else None
        except Exception:
            sha = None
        try:
            AuditLog().start(allowed=False, reason=str(exc.message), image_sha256=sha,
                             consent_choice=consent if isinstance(consent, str) else None,
                             consent_name=name if isinstance(name, str) else None,
                             extra={"api": api, "refused_by": "app"})
        except Exception:
            log.exception("could not record a refusal in the audit log")
        raise


def _remembered(request, fn):
    """Run fn(); a refusal is remembered for the visitor's browser session (`show_refusal` puts it in the
    status box after Gradio's pop-up has gone) and raised on."""
    try:
        return fn()
    except gr.Error as err:
        remember_refusal(getattr(request, "session_hash", None), str(err.message))
        raise


def show_refusal(request: gr.Request):
    """After a failed event: the refusal's sentence for the status box (nothing when there is none)."""
    sentence = last_refusal(getattr(request, "session_hash", None))
    return sentence if sentence else gr.skip()


def _finish(request_id: str, outcome: str, detail: str | None = None) -> None:
    try:
        AuditLog().finish(request_id, outcome, detail)
    except Exception:
        log.exception("could not record the outcome of %s", request_id)


# ------------------------------------------------------------------------------------------------ Generate
def generate(image, audio, consent, name, selfie, face_index, size, seed, gaze_x, gaze_y, distance, emotion,
             emotion_weight, motion_scale, progress=gr.Progress(), request: gr.Request = None):
    """Generate tab: gate (validation, consent, likeness), then portrait + audio + controls -> video.

    Returns (video path, status text). Every refusal and error becomes a one-sentence message (in the audit
    log, and kept for the page's status box)."""
    return _remembered(request, lambda: _generate_checked(
        image, audio, consent, name, selfie, face_index, size, seed, gaze_x, gaze_y, distance, emotion,
        emotion_weight, motion_scale, progress))


def _generate_checked(image, audio, consent, name, selfie, face_index, size, seed, gaze_x, gaze_y, distance,
                      emotion, emotion_weight, motion_scale, progress):
    _WARM.wait(LIMITS.generate_timeout_s)   # the models the start-up is loading: share them, never race them
    with _logged("generate", image, consent, name):
        image, audio = _upload(image, "portrait"), _upload(audio, "audio clip")
        selfie = _upload(selfie, "selfie")
        UPLOADS.claim(image, audio, selfie)
        if not image:
            raise refuse("Please upload a portrait (JPEG, PNG or WebP).")
        if not audio:
            raise refuse("Please upload or record an audio clip (speech or singing).")
        size, controls = _controls(size, seed, gaze_x, gaze_y, distance, emotion, emotion_weight, motion_scale)
        face = _face_index(face_index)
    progress(0.02, desc="Safety check: files, consent, likeness")
    decision = check_request(image, audio, consent, name, selfie=selfie or None, face_index=face,
                             max_audio_s=MAX_AUDIO_S, max_image_mp=LIMITS.image_mp,
                             audio_sample_rate=OUTPUT_SAMPLE_RATE, example_images=EXAMPLE_IMAGES)
    if not decision.allowed:
        raise refuse(decision.reason)
    try:
        out, frames, clip, dt, mouth = run_with_timeout(
            lambda: _generate(decision, size, controls, progress), LIMITS.generate_timeout_s)
    except JobTimeout:
        _finish(decision.request_id, "timed_out", f"over {LIMITS.generate_timeout_s:g} s")
        raise refuse(f"The video took longer than the {LIMITS.generate_timeout_s:g} s this demo allows, so it "
                     "was stopped; please try a shorter clip or a smaller size.") from None
    except InputError as exc:
        _finish(decision.request_id, "failed", str(exc))
        raise refuse(str(exc)) from None
    except Exception:  # never a traceback in the UI; the log keeps it for the operator
        log.exception("generation failed")
        _finish(decision.request_id, "failed", "internal error")
        raise refuse("Something went wrong while generating the video. Please try another portrait or audio "
                     "clip; the operator's log has the details.") from None
    _finish(decision.request_id, "finished")
    selfie_note = ""
    if decision.selfie is not None:
        selfie_note = f" Selfie check: {'match' if decision.selfie.match else 'no match'}."
    status = (f"{frames} frames ({clip.duration:.1f} s of audio) in {dt:.1f} s - {clip.duration / dt:.2f}x real "
              f"time; mouth model: {mouth}. Watermark id {out.payload}, C2PA manifest signed with the demo "
              f"certificate, request {decision.request_id}.{selfie_note}")
    return str(out.path), status


def _generate(decision, size: int, controls: dict, progress):
    """The gate's decision -> a signed MP4: one pipeline call, on the gate's decoded pixels, samples and face
    (nothing is decoded or detected again); the pipeline reports its progress, with the time left."""
    t0 = time.perf_counter()
    pipe = pipeline(size)
    clip = Audio(decision.audio.samples, decision.audio.sample_rate)   # the gate's one decode, at the output rate
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = pipe.write(decision.image.rgb, clip, OUT_DIR / f"talking_{uuid.uuid4().hex[:12]}.mp4",
                     face_box=decision.face, request_id=decision.request_id, label=LABEL,
                     progress=lambda fraction, what: progress(fraction, desc=what), **controls)
    return out, len(out.motion), clip, time.perf_counter() - t0, pipe.mouth.name


# ------------------------------------------------------------------------------------------------ faces
FACES_MAX_SIDE = 960         # px: the face finder decodes and searches a copy at most this large (a preview)
_FACES: collections.OrderedDict[str, tuple] = collections.OrderedDict()   # image SHA-256 -> (preview, boxes)
_FACES_LOCK = threading.Lock()


def find_faces(image):
    """Generate tab: number every face found in the portrait on a preview; clicking one picks it.

    Returns (preview RGB or None, face number (-1: the only face), the faces' boxes in preview pixels).
    Cheap by construction: the file's header is checked first, a large image is decoded shrunk (JPEG at 1/2 to
    1/8 scale in the decoder) to at most FACES_MAX_SIDE px, and the answer is kept by the file's SHA-256, so an
    image analysed once is never analysed again (the 64 most recent). Per-visitor metering is the guard's."""
    _WARM.wait(LIMITS.generate_timeout_s)
    from safety.likeness import default_detector
    from vasa_core.validate import MAX_IMAGE_BYTES, input_sha256, validate_image
    if not image or not isinstance(image, str) or UPLOADS.was_swept(image):
        return None, -1, []
    try:
        from PIL import Image
        with Image.open(image, formats=["PNG", "JPEG", "WEBP"]) as im:   # header only: the host's bound first
            if im.size[0] * im.size[1] > LIMITS.image_mp * 1e6:
                return None, -1, []
        sha = input_sha256(image, MAX_IMAGE_BYTES)
    except Exception:                                       # Generate's gate gives the sentence
        return None, -1, []
    with _FACES_LOCK:
        if sha in _FACES:
            _FACES.move_to_end(sha)
            preview, boxes = _FACES[sha]
            return preview.copy(), -1, list(boxes)
    try:
        rgb = validate_image(image, max_side=FACES_MAX_SIDE).rgb
    except Exception:
        return None, -1, []
    import cv2
    scale = min(1.0, 480 / max(rgb.shape[:2]))
    preview = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb.copy()
    boxes = []
    for i, face in enumerate(default_detector().detect(rgb)):
        x0, y0, x1, y1 = (int(round(v * scale)) for v in face.box)
        boxes.append((x0, y0, x1, y1))
        cv2.rectangle(preview, (x0, y0), (x1, y1), (255, 200, 0), 2)
        cv2.putText(preview, str(i), (x0 + 4, y0 + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 200, 0), 2)
    with _FACES_LOCK:
        _FACES[sha] = (preview.copy(), tuple(boxes))
        while len(_FACES) > 64:
            _FACES.popitem(last=False)
    return preview, -1, boxes          # several faces: the gate asks for a click (or a number)


def pick_face(boxes, evt: gr.SelectData):
    """Clicking the preview picks the face under the pointer (or the nearest one)."""
    if not boxes:
        return gr.skip()
    x, y = evt.index[0], evt.index[1]
    inside = [i for i, (x0, y0, x1, y1) in enumerate(boxes) if x0 <= x <= x1 and y0 <= y <= y1]
    if inside:
        return inside[0]
    return min(range(len(boxes)), key=lambda i: ((boxes[i][0] + boxes[i][2]) / 2 - x) ** 2
               + ((boxes[i][1] + boxes[i][3]) / 2 - y) ** 2)


# ------------------------------------------------------------------------------------------------ Detect
def _lower_priority() -> None:
    """Detect runs at a lower CPU priority than generation and live streams (Linux: per-thread nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


_DETECT_POOL = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vasa-detect", initializer=_lower_priority)


def _detector():
    """The issue-12 deepfake detector (safety.detector), or None while it is not installed."""
    try:
        from safety import detector
    except ImportError:
        return None
    return detector if hasattr(detector, "detect") else None


def _clip_facts(path: str) -> tuple[int, int, float]:
    """(width, height, seconds) of a video file from its header; refuses what is not a readable video."""
    import av
    try:
        with av.open(path) as c:
            if not c.streams.video:
                raise refuse("The file has no video track; please upload a video clip (MP4, WebM, MOV).")
            v = c.streams.video[0]
            seconds = float(c.duration / 1e6) if c.duration else 0.0
            return int(v.codec_context.width or 0), int(v.codec_context.height or 0), seconds
    except gr.Error:
        raise
    except Exception:
        raise refuse("The clip could not be read; it may not be a video file, or it is damaged.") from None


def detect(clip, request: gr.Request = None):
    """Detect tab: is this clip one of ours (watermark, content credential) and does it look generated (the
    detector)? Shows public facts only."""
    return _remembered(request, lambda: _detect(clip))


def _detect(clip):
    with _logged("detect"):
        clip = _upload(clip, "clip")
        UPLOADS.claim(clip)
    if not clip:
        raise refuse("Please upload a video clip to check.")
    w, h, _ = _clip_facts(clip)
    if w * h > LIMITS.detect_max_mp * 1e6:
        raise refuse(f"The clip's frames are too large ({w}x{h}); the limit here is {LIMITS.detect_max_mp:g} "
                     "megapixels a frame. Please scale it down and try again.")

    def job():
        from safety.verify import verify
        report = verify(clip, max_frames=LIMITS.detect_max_frames)
        view = report.public_view()
        text = report.public_summary()
        det = _detector()
        try:
            res = det.detect(clip, check_watermark=False) if det is not None else None
        except JobTimeout:
            raise
        except Exception as exc:
            ours = type(exc).__module__ == "safety.detector"      # e.g. its model is not installed
            log.warning("the deepfake detector failed: %s", exc, exc_info=not ours)
            res = None
        if res is not None:
            view["detector"] = {"verdict": res.verdict, "fake_score": round(float(res.fake_score), 3),
                                "forensic_score": None if res.forensic_score is None else
                                round(float(res.forensic_score), 3),
                                "cues": res.cues, "seconds": round(float(res.seconds), 2)}
            text += f"\ndetector: {res.verdict} (fake score {res.fake_score:.2f})"
        else:
            view["detector"] = None
            text += "\ndetector: not available on this server"
        return text, view

    try:
        return _DETECT_POOL.submit(run_with_timeout, job, LIMITS.detect_timeout_s).result()
    except JobTimeout:
        raise refuse(f"Checking the clip took longer than the {LIMITS.detect_timeout_s:g} s this demo allows; "
                     "please try a shorter clip.") from None
    except gr.Error:
        raise
    except Exception:
        log.exception("detect failed")
        raise refuse("The clip could not be checked; it may not be a readable video file.") from None


_REPORT: dict = {}


def detector_report():
    """Detector report tab: the detector's evaluation (markdown + figures as HTML), computed once.

    The figures are PNGs inlined in the page at their own aspect ratio (scaled down to the column's width only),
    never in a gallery's fixed-size tiles, which cut off their axis labels."""
    det = _detector()
    if det is None or not hasattr(det, "report"):
        return "The deepfake detector is not installed on this server yet.", ""
    if "md" not in _REPORT:
        try:
            md, figures = det.report()
        except Exception:
            log.exception("detector report failed")
            return "The detector report could not be produced; the operator's log has the details.", ""
        import base64
        import io
        tags = []
        for i, fig in enumerate(figures):
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
            tags.append(f'<img alt="Figure {i + 1}" style="max-width:100%;height:auto;flex:0 1 auto" '
                        f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">')
        html = '<div style="display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start">' + "".join(tags) + "</div>"
        _REPORT.update(md=md, html=html)
    return _REPORT["md"], _REPORT["html"]


# ------------------------------------------------------------------------------------------------ Live
_LIVE: dict[str, LiveSession] = {}


def live_start(image, consent, name, size, seed, gaze_x, gaze_y, distance, emotion, emotion_weight, motion_scale,
               request: gr.Request):
    """Live tab, "Start": the same gate as Generate (no audio yet), then a session waiting for the microphone."""
    return _remembered(request, lambda: _live_start(image, consent, name, size, seed, gaze_x, gaze_y, distance,
                                                     emotion, emotion_weight, motion_scale, request))


def _live_start(image, consent, name, size, seed, gaze_x, gaze_y, distance, emotion, emotion_weight, motion_scale,
                request):
    _WARM.wait(LIMITS.generate_timeout_s)
    with _logged("live_start", image, consent, name):
        image = _upload(image, "portrait")
        UPLOADS.claim(image)
        if not image:
            raise refuse("Please upload a portrait (JPEG, PNG or WebP).")
        size, controls = _controls(size, seed, gaze_x, gaze_y, distance, emotion, emotion_weight, motion_scale)
    decision = check_request(image, None, consent, name, live=True, max_audio_s=MAX_AUDIO_S,
                             max_image_mp=LIMITS.image_mp, example_images=EXAMPLE_IMAGES)
    if not decision.allowed:
        raise refuse(decision.reason)
    face_box = decision.face     # the face the gate found and screened, handed on (found once per request)
    key = request.session_hash or uuid.uuid4().hex
    for other, sess in list(_LIVE.items()):                  # sessions whose browser went away
        if time.perf_counter() - sess.last_seen > 30:
            _LIVE.pop(other, None)
            sess.close()
            _finish(sess.request_id, "cancelled", "live: no audio for 30 s")
    old = _LIVE.pop(key, None)
    if old is not None:
        old.close()
    if len(_LIVE) >= 2:
        _finish(decision.request_id, "refused", "too many live sessions")
        raise refuse("Two live sessions are running already, the most this demo allows; please try again soon.")
    pipe = pipeline(size)
    pipe.prepare(decision.image.rgb, face_box)
    _LIVE[key] = LiveSession(pipe, decision.image.rgb, face_box, decision.request_id, controls, MAX_AUDIO_S,
                             label=LABEL, audit=AuditLog())
    return ("Safety check passed. Press record and speak: the portrait answers while you talk "
            f"(at most {MAX_AUDIO_S:g} s).")


def live_chunk(chunk, request: gr.Request):
    """Live tab, every microphone chunk: audio in, the newest frame and the delay out."""
    session = _LIVE.get(request.session_hash or "")
    if session is None:
        return gr.skip(), "Press \"Start live session\" first (it runs the safety check)."
    if chunk is None:
        return gr.skip(), session.status()
    if session.seconds >= session.max_seconds:
        live_stop(request)
        return gr.skip(), f"The live session reached its {session.max_seconds:g} s limit and was stopped."
    rate, samples = chunk
    session.push(int(rate), samples)
    frame = session.latest
    return (frame if frame is not None else gr.skip()), session.status()


def live_stop(request: gr.Request):
    session = _LIVE.pop(request.session_hash or "", None)
    if session is None:
        return gr.skip()
    session.close()
    _finish(session.request_id, "finished" if not session.error else "failed",
            f"live: {session.frames} frames, {session.seconds:.1f} s")
    return session.status().replace("Live:", "Finished:")


# ------------------------------------------------------------------------------------------------ layout
RESPONSIBLE_AI = """
## Responsible AI
**What this is.** A research demo of audio-driven talking faces (in the spirit of Microsoft's VASA-1). It can
make a real person appear to say things they never said. It runs offline; nothing is sent anywhere.

**Before anything is generated** every request passes one gate: the files are checked by content and re-encoded;
you must say whose face it is and type your name; every face in the picture is compared with a gallery of
protected people kept by the operator (a match refuses the request without saying who); the request is written
to an append-only audit log (hashes only, never the images). The live mode passes the same gate.

**Every output** carries an invisible watermark keyed with this installation's secret (a random id that keys
the audit log, recoverable after re-encoding, scaling, cropping and cutting), a signed C2PA content credential
that says it was made by an AI generator (signed with this demo's own certificate, so viewers will call the
signer untrusted), and, in this hosted demo, a visible "AI-generated" label. The Detect tab and
`python -m safety verify CLIP` check any clip; the Detect tab shows only public facts (never who made it).

**Limits, honestly.** Likeness screening only knows the people in its gallery and was measured on very few
identities; a watermark can be destroyed by heavy processing; a detector score is evidence, not proof. Do not
use this to deceive, harass, or impersonate anyone.
"""


REPORT_INTRO = """
### What this report shows
How well the deepfake detector behind the Detect tab tells real talking-head clips from generated ones,
measured on clips it never saw in training: its accuracy and error rates, the score distributions of real and
generated clips, and where it fails (clips from other generators). A score is evidence, not proof.
"""


#: Browser-side: keep the statement and name only when the portrait is one of the examples' own files.
_KEEP_ONLY_FOR_EXAMPLES = (
    "(img, consent, name) => { const f = img && (img.orig_name || String(img.path || '').split('/').pop()); "
    f"return {sorted({Path(row[0]).name for row in EXAMPLES})!r}.includes(f) ? [consent, name] : [null, '']; }}")


def consent_given(consent, name):
    """Generate is enabled only while a statement is chosen and a name typed (the gate checks both again)."""
    ok = isinstance(consent, str) and consent in CONSENT_CHOICES and isinstance(name, str) and len(name.strip()) >= 2
    return gr.update(interactive=ok)


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="VASA studio: talking portraits",
                   delete_cache=(int(LIMITS.clean_every_s), int(LIMITS.output_ttl_s))) as demo:
        gr.Markdown(f"# Talking portrait studio (v{__version__})\nOne portrait + one speech or singing clip "
                    "-> a talking-head video, generated on this machine. The default example animates "
                    "Grace Hopper's public-domain US Navy portrait with speech this project synthesised.")
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column():
                    image = RawImage(label="Portrait", type="filepath", value=DEFAULT_IMAGE, height=320,
                                     elem_id="portrait")
                    audio = RawAudio(label="Speech or singing", type="filepath", value=DEFAULT_AUDIO,
                                     elem_id="speech")
                    # the example's own attestation; a new upload clears both (consent is the visitor's act)
                    consent = Choice(list(CONSENT_CHOICES), value=CONSENT_PUBLIC_DOMAIN,
                                     label="Whose face is this? (required)", elem_id="consent")
                    name = gr.Textbox(label="Your name (required, recorded in the audit log)",
                                      value=EXAMPLE_NAME, elem_id="name")
                    with gr.Accordion("Verify it's me (optional): a selfie or second photo of you", open=False):
                        selfie = RawImage(label="Selfie", type="filepath", sources=["upload", "webcam"], height=200)
                    with gr.Accordion("Faces found: click the face to animate (group photos)", open=False):
                        faces_view = gr.Image(label="Faces found (click one)", interactive=False, height=240,
                                              elem_id="faces")
                        face_index = RawNumber(value=-1, precision=0, elem_id="face-index",
                                               label="Face to animate (0 = leftmost; -1 = the only face)")
                    face_boxes = gr.State([])
                    with gr.Accordion("Controls", open=False):
                        size = IntChoice(SIZES, value=min(512, SIZES[-1]), label="Output size (pixels)",
                                         elem_id="size")
                        seed = RawNumber(value=0, precision=0, label="Seed (same seed, same motion)")
                        gaze_x = RawSlider(*CONTROL_RANGES["gaze_x"], value=0, step=1, label="Gaze left/right (degrees)")
                        gaze_y = RawSlider(*CONTROL_RANGES["gaze_y"], value=0, step=1, label="Gaze down/up (degrees)")
                        distance = RawSlider(*CONTROL_RANGES["distance"], value=1.0, step=0.05,
                                             label="Head distance (1 = as framed)")
                        emotion = Choice(list(EMOTIONS), value="neutral", label="Emotion")
                        emotion_weight = RawSlider(*CONTROL_RANGES["emotion_weight"], value=0.6, step=0.05,
                                                   label="Emotion intensity")
                        motion_scale = RawSlider(*CONTROL_RANGES["motion_scale"], value=1.0, step=0.1,
                                                 label="Head motion (0 = still)")
                    button = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column():
                    video = gr.Video(label="Result", autoplay=True, elem_id="result")
                    status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                    gr.Examples(EXAMPLES, [image, audio, consent, name], label="Examples: public-domain portrait, a "
                                "painting-like version of it, speech this project synthesised in English and German",
                                elem_id="examples")
            controls = [size, seed, gaze_x, gaze_y, distance, emotion, emotion_weight, motion_scale]
            image.change(find_faces, [image], [faces_view, face_index, face_boxes], api_name="faces",
                         concurrency_id="faces", concurrency_limit=1, show_progress="hidden")
            faces_view.select(pick_face, [face_boxes], [face_index], api_name=False, show_progress="hidden")
            # consent is an act: any new portrait (upload, webcam, paste) clears the statement and the name, in
            # the browser (no server call), unless it is an example's own file (the gate checks that by content);
            # Generate is enabled only while both are given
            image.change(None, [image, consent, name], [consent, name], js=_KEEP_ONLY_FOR_EXAMPLES,
                         api_name=False, queue=False, show_progress="hidden")
            gr.on([consent.change, name.change], consent_given, [consent, name], [button], api_name=False,
                  queue=False, show_progress="hidden")
            button.click(generate, [image, audio, consent, name, selfie, face_index] + controls, [video, status],
                         api_name="generate", concurrency_id="generate", concurrency_limit=1
                         ).failure(show_refusal, None, [status], api_name=False, queue=False, show_progress="hidden")
        with gr.Tab("Live", elem_id="live-tab"):
            gr.Markdown("Speak into your microphone: the portrait on the left of the Generate tab talks back while "
                        "you speak. The same safety check runs first; frames are watermarked and labelled.")
            with gr.Row():
                with gr.Column():
                    start = gr.Button("Start live session", variant="primary", elem_id="live-start")
                    mic = RawAudio(sources=["microphone"], streaming=True, type="numpy", label="Microphone",
                                   elem_id="mic")
                with gr.Column():
                    live_out = gr.Image(label="Live portrait", format="jpeg", interactive=False, elem_id="live-out")
                    live_status = gr.Textbox(label="Latency", interactive=False, elem_id="live-status")
            start.click(live_start, [image, consent, name] + controls, [live_status], api_name="live_start",
                        concurrency_id="live", concurrency_limit=2
                        ).failure(show_refusal, None, [live_status], api_name=False, queue=False,
                                  show_progress="hidden")
            mic.stream(live_chunk, [mic], [live_out, live_status], stream_every=0.1,
                       time_limit=int(MAX_AUDIO_S) + 5, concurrency_id="live_chunks", concurrency_limit=4,
                       api_name="live_chunk", show_progress="hidden")
            mic.stop_recording(live_stop, None, [live_status], api_name="live_stop")
        with gr.Tab("Detect", elem_id="detect-tab"):
            gr.Markdown("Check any clip: this product's invisible watermark (under this installation's key), its "
                        "C2PA content credential, and the deepfake detector's verdict. Only public facts are "
                        "shown; the operator keeps the full record.")
            with gr.Row(equal_height=False):        # the clip beside its verdict: both above the fold
                with gr.Column(scale=1):
                    clip = RawVideo(label="Clip to check", elem_id="clip", height=300)
                with gr.Column(scale=1):
                    check = gr.Button("Check", variant="primary", elem_id="check")
                    verdict = gr.Textbox(label="Verdict", interactive=False, lines=5, elem_id="verdict")
            details = gr.JSON(label="Details")
            check.click(detect, [clip], [verdict, details], api_name="detect", concurrency_id="detect",
                        concurrency_limit=1
                        ).failure(show_refusal, None, [verdict], api_name=False, queue=False, show_progress="hidden")
        with gr.Tab("Detector report", elem_id="report-tab") as report_tab:
            gr.Markdown(REPORT_INTRO, elem_id="report-intro")
            report_md = gr.Markdown("Loading the detector's evaluation...", elem_id="report")
            report_figs = gr.HTML(elem_id="report-figs")
            report_tab.select(detector_report, None, [report_md, report_figs], api_name="detector_report")
        with gr.Tab("Responsible AI", elem_id="rai-tab"):
            gr.Markdown(RESPONSIBLE_AI)
    return demo


def warm_up() -> None:
    """Load what the first request needs (face detector, identity embedder, voice-activity model, face mesh,
    lip-sync network, the watermark's tables, the C2PA signer and its certificate) on the default example, and analyse
    its portrait for the face the gate will pick (cached), so that the first request is no slower than the next.
    Writes no audit row and no output file (only what the first request would make anyway: the installation's
    signing certificate, once, and the audit log's tables); a failure only means the first request loads them.
    `serve` runs it on a thread; requests arriving meanwhile wait for it (`_WARM`) instead of racing it."""
    try:
        from safety.likeness import analyze_faces
        from vasa_core.validate import validate_audio, validate_image
        rgb = validate_image(DEFAULT_IMAGE).rgb
        speech = validate_audio(DEFAULT_AUDIO, max_seconds=MAX_AUDIO_S, sample_rate=OUTPUT_SAMPLE_RATE)
        faces = analyze_faces(rgb)
        pipe = pipeline(min(512, SIZES[-1]))
        pipe.prepare(rgb, tuple(faces[0].face.box) if len(faces) == 1 else None)   # the face the gate will pick
        pipe.motion(Audio(speech.samples, speech.sample_rate))
        pipe.marker.embedder(pipe.marker.new_payload(), pipe.size, pipe.size)  # watermark module and tables
        from safety.provenance import ensure_demo_certificate
        ensure_demo_certificate()    # the installation's signing certificate: the first signing would make it
        pipe.publisher.audit         # and open the audit log (no row is written)
        log.info("models warm")
    except Exception:
        log.exception("warm-up failed; the first request will load the models")
    finally:
        _WARM.set()


def serve(demo: gr.Blocks | None = None, prevent_thread_lock: bool = False):
    """Start the cleaner and serve the demo with the host's bounds (queue, uploads, per-client limits,
    security headers)."""
    from starlette.middleware import Middleware

    from serving.cleaner import Cleaner
    from serving.guard import HostGuard
    from serving.limits import forwarded_allow_ips

    demo = demo or build_demo()
    d = data_dir()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    # uvicorn (started by Gradio) rewrites the client address from X-Forwarded-For when the peer is one it
    # trusts; its default trusts 127.0.0.1, so anyone local could pick an address per request: trust no one
    # unless VASA_TRUST_PROXY=1, then only VASA_PROXY_IPS
    forwarded_allow_ips(LIMITS)
    UPLOADS.uploaded = demo.upload_file_set          # Gradio adds every uploaded path to this set
    Cleaner([OUT_DIR, CACHE_DIR], LIMITS.output_ttl_s, LIMITS.clean_every_s, audit=AuditLog(),
            stale_job_s=LIMITS.generate_timeout_s + 60, uploads=UPLOADS).start()
    demo.queue(max_size=LIMITS.queue_size, default_concurrency_limit=1, api_open=False)
    import matplotlib.pyplot  # noqa: F401  (mediapipe imports it; Gradio switches its backend on every request:
    #                                      import it here, never half-way on the warm-up thread)
    _WARM.clear()
    threading.Thread(target=warm_up, name="vasa-warm-up", daemon=True).start()
    return demo.launch(
        server_name=os.environ.get("VASA_HOST", "127.0.0.1"), server_port=int(os.environ.get("VASA_PORT", "7860")),
        show_error=False, max_file_size=int(LIMITS.upload_mb * 1024 * 1024), prevent_thread_lock=prevent_thread_lock,
        blocked_paths=[str(d / "c2pa"), str(d / "audit.db"), str(d / "gallery.db")],
        app_kwargs={"middleware": [Middleware(HostGuard, blocks=demo, limits=LIMITS, limited=JOB_APIS,
                                              light=LIGHT_APIS, upload_dir=CACHE_DIR, audit=AuditLog)]})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    serve()
