"""Helpers for the tests that serve the demo for real on 127.0.0.1 (test_app, test_hosting, test_browser)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_DOMAIN = "This is an artwork, a historical portrait in the public domain, or a fictional character"


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_peak_mb(self) -> float:
        """Peak resident memory of the server process (VmHWM), MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(tmp: Path, **env_vars: str) -> Server:
    """Serve app.py with its own data directory under `tmp` and the given VASA_* variables."""
    port = free_port()
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, VASA_PORT=str(port), VASA_DATA_DIR=str(data), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **env_vars)
    env.pop("GRADIO_TEMP_DIR", None)
    log_path = tmp / "server.log"
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=open(log_path, "wb"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the demo exited at start:\n" + log_path.read_text(errors="replace")[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("the demo did not start within 180 s")
    time.sleep(1)
    return Server(url, proc, data, log_path)


def short_speech(path: Path, seconds: float = 2.0, offset: float = 0.5) -> Path:
    """A WAV of `seconds` of the project's own default speech (assets/default_speech.ogg)."""
    import soundfile as sf
    x, sr = sf.read(ROOT / "assets" / "default_speech.ogg", dtype="float32")
    if x.ndim == 2:
        x = x.mean(axis=1)
    a = int(offset * sr)
    sf.write(path, x[a:a + int(seconds * sr)], sr)
    return path
