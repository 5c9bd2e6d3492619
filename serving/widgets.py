"""Gradio inputs that hand the safety gate what the visitor sent, untouched.

Gradio's own Image input decodes and re-saves every upload before the app sees it (a 190 KB PNG of 169
megapixels cost 730 MB that way, before any limit), Audio may convert, Radio/Dropdown answer values
outside their choices with Gradio's own multi-line text, and Number/Slider answer a text or an out-of-range
value ("abc", 1e308) with Gradio's own error and a traceback in the server log. These subclasses keep the widgets in the browser
but pass the raw upload's path (or the raw value) on, so `safety.gate.check_request` sees it first, refuses
with one sentence and records the refusal in the audit log.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

__all__ = ["RawImage", "RawAudio", "RawVideo", "Choice", "IntChoice", "RawNumber", "RawSlider"]


def _path(payload) -> str | None:
    if payload is None:
        return None
    path = getattr(payload, "path", None)
    return str(path) if path else None


class _PathInput:
    """Mixin for file widgets: the input is the uploaded file's path, never decoded or converted on the server;
    the browser draws Gradio's own widget (`_block`)."""
    _block = ""

    def get_block_name(self) -> str:
        return self._block

    def preprocess(self, payload) -> str | None:  # type: ignore[override]
        return _path(payload)


class RawImage(_PathInput, gr.Image):
    """An image widget whose input is the uploaded file's path, never decoded on the server."""
    _block = "image"


class RawAudio(gr.Audio):
    """An audio widget whose (non-streaming) input is the uploaded file's path, never converted."""

    def get_block_name(self) -> str:     # the browser draws it with Gradio's own widget
        return "audio"

    def preprocess(self, payload):  # type: ignore[override]
        if self.streaming:
            return super().preprocess(payload)
        return _path(payload)


class RawVideo(_PathInput, gr.Video):
    """A video widget whose input is the uploaded file's path, never converted."""
    _block = "video"


class Choice(gr.Radio):
    """Radio buttons that pass any value on (the app checks it and answers in one sentence)."""

    def get_block_name(self) -> str:     # the browser draws it with Gradio's own widget
        return "radio"

    def preprocess(self, payload: Any) -> Any:  # type: ignore[override]
        return payload


class IntChoice(gr.Dropdown):
    """A dropdown of integers, advertised in the API schema as integers (Gradio's says strings), accepting
    an integer or a string of digits; anything else passes on for the app to refuse in one sentence."""

    def get_block_name(self) -> str:     # the browser draws it with Gradio's own widget
        return "dropdown"

    def api_info(self) -> dict[str, Any]:
        return {"type": "integer", "enum": [c[1] for c in self.choices]}

    def preprocess(self, payload: Any) -> Any:  # type: ignore[override]
        if isinstance(payload, str) and payload.strip().isdigit() and len(payload.strip()) < 6:
            return int(payload.strip())
        return payload


class RawNumber(gr.Number):
    """A number box that passes any value on (the app checks it and answers in one sentence)."""

    def get_block_name(self) -> str:     # the browser draws it with Gradio's own widget
        return "number"

    def preprocess(self, payload: Any) -> Any:  # type: ignore[override]
        return payload


class RawSlider(gr.Slider):
    """A slider that passes any value on (the app checks its range and answers in one sentence)."""

    def get_block_name(self) -> str:     # the browser draws it with Gradio's own widget
        return "slider"

    def preprocess(self, payload: Any) -> Any:  # type: ignore[override]
        return payload
