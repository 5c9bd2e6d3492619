"""The Gradio demo, served for real on 127.0.0.1 and driven through its HTTP API (gradio_client)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_DOMAIN = ("This is an artwork, a historical portrait in the public domain, or a fictional character")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = _free_port()
    env = dict(os.environ, VASA_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("the demo did not start within 120 s")
    time.sleep(2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_generate_tab_with_default_example(app_url, hopper_path, default_audio):
    from gradio_client import Client, handle_file
    from vasa_core.video import probe
    client = Client(app_url, verbose=False)
    video, status = client.predict(handle_file(str(hopper_path)), handle_file(str(default_audio)), PUBLIC_DOMAIN,
                                   "Test Runner", None, -1, 256, 0, 0, 0, 1.0, "neutral", 0.6, 1.0,
                                   api_name="/generate")
    path = video["video"] if isinstance(video, dict) else video
    info = probe(path)
    assert info["codec"] == "h264" and info["frames"] == 256
    assert "real time" in status and "Watermark id" in status
    verdict = client.predict(handle_file(path), api_name="/detect")[0]
    payload = status.split("Watermark id ")[1].split(",")[0]
    assert "watermark: FOUND" in verdict and payload in verdict and "C2PA manifest: Valid" in verdict


def test_generate_tab_reports_a_clear_error(app_url, default_audio, tmp_path):
    from gradio_client import Client, handle_file
    import numpy as np
    from PIL import Image
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 200, np.uint8)).save(blank)
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(blank)), handle_file(str(default_audio)), PUBLIC_DOMAIN, "Test Runner",
                       None, -1, 256, 0, 0, 0, 1.0, "neutral", 0.6, 1.0, api_name="/generate")
    assert "No face was found" in str(err.value)
    assert "Traceback" not in str(err.value)


def test_generate_tab_requires_consent(app_url, hopper_path, default_audio):
    from gradio_client import Client, handle_file
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(hopper_path)), handle_file(str(default_audio)), None, "",
                       None, -1, 256, 0, 0, 0, 1.0, "neutral", 0.6, 1.0, api_name="/generate")
    assert "consent" in str(err.value).lower() or "choose" in str(err.value).lower()
    assert "Traceback" not in str(err.value)
