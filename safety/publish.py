"""What every clip the engine writes goes through, handed to `vasa_core.TalkingFacePipeline` by whoever
builds it (the app, the CLI, the tools, a host's own code; `build_pipeline` below is the one factory they share):

* `Marker`: a fresh watermark id per clip, the invisible watermark in every frame (`safety.watermark`), and
  the optional visible "AI-generated" corner label.
* `Publisher`: signs the finished MP4 with a C2PA manifest whose soft binding is the watermark id
  (`safety.provenance`) and records the clip in the audit log (`safety.audit`).

Nothing is created when these objects are built: the installation's watermark key, signing certificate and
audit log (in `safety.datadir.data_dir()`) are opened on first use.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Marker", "Publisher", "build_pipeline"]


@dataclass(frozen=True)
class Marker:
    """Marks frames. key: the watermark key (None: the installation's key, read on first use)."""
    key: bytes | None = None

    def new_payload(self) -> int:
        """A fresh random 32-bit watermark id for one clip."""
        from safety.watermark import new_payload
        return new_payload()

    def embedder(self, payload: int, width: int, height: int):
        """A `safety.watermark.Watermarker` for frames of this size: `.embed(frame, index) -> frame`."""
        from safety.watermark import Watermarker
        return Watermarker(payload, width, height, key=self.key)

    @staticmethod
    def label(frame: np.ndarray) -> np.ndarray:
        """The frame with a visible "AI-generated" label in a corner."""
        from safety.watermark import label_frame
        return label_frame(frame)

    @staticmethod
    def hex(payload: int) -> str:
        """The id as 8 lower-case hex digits (how the manifest, the audit log and `verify` show it)."""
        from safety.watermark import payload_hex
        return payload_hex(payload)


class Publisher:
    """Signs and records written clips. audit_path: the audit log's SQLite file (None: the data directory's)."""

    def __init__(self, audit_path: str | Path | None = None):
        self.audit_path = audit_path
        self._audit = None

    @property
    def audit(self):
        """The `safety.audit.AuditLog` (opened, and created if needed, on first use)."""
        if self._audit is None:
            from safety.audit import AuditLog
            self._audit = AuditLog(self.audit_path)
        return self._audit

    def start(self, **fields) -> str:
        """Open an allowed request's audit record (fields as `AuditLog.start`); returns its id."""
        return self.audit.start(allowed=True, **fields)

    def sign(self, unsigned: Path, out: Path, payload: int, generator: str, version: str) -> dict:
        """Sign the MP4 `unsigned` into `out` (C2PA: made by `generator` `version`, the watermark id as soft
        binding); returns the signed manifest."""
        from safety.provenance import sign_mp4
        return sign_mp4(unsigned, out, payload, generator, version)

    def record(self, request_id: str, payload_hex: str, output_sha256: str) -> None:
        """Add the clip's watermark id and file hash to its audit record."""
        self.audit.update(request_id, watermark_payload=payload_hex, output_sha256=output_sha256)


def build_pipeline(size: int = 512, fps: float = 25.0, device: str = "auto", lipsync: str = "default",
                   audit_path: str | Path | None = None, *, marker: Marker | None = None,
                   publisher: Publisher | None = None):
    """The one factory the app, the CLI and the tools build their pipeline with: a `TalkingFacePipeline`
    handed its components: the mouth model `lipsync` names ('default': the Whisper mouth; live streams get the
    learned one on first use), the renderer, and this installation's watermark key, signing certificate and
    audit log (`audit_path`: another audit-log file, e.g. for a benchmark), or the `marker` / `publisher` given."""
    from vasa_core.mouth import load_mouth_model
    from vasa_core.pipeline import TalkingFacePipeline
    from vasa_core.render import Renderer
    return TalkingFacePipeline(size=size, fps=fps, device=device, mouth=load_mouth_model(lipsync),
                               renderer=Renderer, marker=marker if marker is not None else Marker(),
                               publisher=publisher if publisher is not None else Publisher(audit_path))
