"""Turned heads: a warp can only move the pixels a portrait has, so a 3/4 view turns towards the camera only
a little (the far cheek the nose hid cannot be invented; past ~5 degrees the nose balloons and the lips smear,
seen on a 3/4-view painting), while it turns away, and a frontal face turns either way, freely."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vasa_core.render import REVEAL_FRONTAL_DEG, REVEAL_MIN_DEG, Renderer, reveal_yaw_limit


def test_the_limit_falls_with_the_portraits_own_yaw():
    assert reveal_yaw_limit(0.0) == REVEAL_FRONTAL_DEG == reveal_yaw_limit(-5.0)
    assert reveal_yaw_limit(-30.0) == REVEAL_MIN_DEG == reveal_yaw_limit(24.0)
    assert REVEAL_MIN_DEG < reveal_yaw_limit(15.0) < REVEAL_FRONTAL_DEG


@pytest.fixture(scope="module")
def three_quarter(hopper_portrait):
    """Grace Hopper's renderer, told her portrait is a 3/4 view turned 25 degrees (only the limit reads it)."""
    return Renderer(dataclasses.replace(hopper_portrait, yaw=-25.0), device="cpu")


def _nose_shift(r: Renderer, yaw: float) -> float:
    rest, turned = r.landmarks({}), r.landmarks({"yaw": yaw})
    return float(np.abs(turned[1, 0] - rest[1, 0]))     # nose tip, pixels


def test_a_three_quarter_view_turns_towards_the_camera_only_a_little(three_quarter, hopper_renderer):
    towards, away = _nose_shift(three_quarter, 15.0), _nose_shift(three_quarter, -15.0)
    assert towards < 0.45 * away                       # limited towards the hidden side ...
    assert abs(_nose_shift(three_quarter, 2.0) - _nose_shift(hopper_renderer, 2.0)) < 0.1 * _nose_shift(
        hopper_renderer, 2.0)                          # ... softly: small turns pass nearly unchanged
    assert _nose_shift(three_quarter, 30.0) < 1.05 * towards   # and never past the limit
    # a frontal portrait turns either way, unchanged (Hopper's own yaw is small)
    assert hopper_renderer.within_view({"yaw": 15.0}) == {"yaw": 15.0} == hopper_renderer.within_view({"yaw": 15.0})
    assert hopper_renderer.within_view({"yaw": -15.0}) == {"yaw": -15.0}


def test_the_rendered_frame_uses_the_limited_pose(three_quarter, hopper_renderer):
    """The frames drawn for +30 and +60 degrees are both the frame at the limit, not stretched turns."""
    a = three_quarter.render({"yaw": 30.0}).astype(np.int16)
    b = three_quarter.render({"yaw": 60.0}).astype(np.int16)
    free = hopper_renderer.render({"yaw": 30.0}).astype(np.int16)
    assert np.abs(a - b).mean() < 0.5 < 4 * 0.5 < np.abs(a - free).mean()
