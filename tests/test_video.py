"""Headless video: frames of both robots are not blank and show the robot; run and compare write clips."""

import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

import robots
from scripts.compare import CompareConfig, comparison_video

# The robot's own colour in the frame (RGB, with a tolerance for shading): the ant's body, the quadrotor's.
BODY_COLOUR = {"ant": ((150, 100, 50), (255, 210, 160)), "quadrotor": ((10, 30, 110), (80, 110, 255))}


@pytest.mark.parametrize("robot, task", [("ant", "broken-leg-3"), ("quadrotor", "heavy-payload")])
def test_frames_are_not_blank_and_show_the_robot_in_the_middle(robot, task):
    env = robots.make(robot, task=task, render_mode="rgb_array")
    env.reset(seed=0)
    low, high = BODY_COLOUR[robot]
    for _ in range(3):
        frame = env.render()
        assert frame.shape[2] == 3 and frame.dtype == np.uint8
        assert frame.std() > 10, "a blank frame"
        h, w = frame.shape[:2]
        middle = frame[h // 6: 5 * h // 6, w // 6: 5 * w // 6].astype(int)
        body = np.all((middle >= low) & (middle <= high), axis=-1)
        assert body.sum() > 20, f"no {robot} in the middle of the frame"
        env.step(np.full(env.action_space.shape, 0.0 if robot == "ant" else -0.17))  # about hover thrust
    env.close()


def test_run_writes_an_mp4_with_the_overlay(tmp_path):
    path = tmp_path / "ant.mp4"
    result = subprocess.run([sys.executable, "-m", "scripts.cli", "run", "ant", "--controller", "scripted",
                             "--steps", "40", "--video", str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    frames = imageio.mimread(path)
    assert len(frames) == 41 and frames[0].std() > 10
    corner = frames[0][:20, :60].astype(int)
    assert (corner.max(axis=-1) > 200).any() and (corner.max(axis=-1) < 60).any(), "white text on a dark box"


def test_compare_writes_a_side_by_side_clip(tmp_path):
    config = CompareConfig(robot="quadrotor", controllers=["scripted", "random"],
                           curve_controllers=["scripted", "random"], episode_length=110, video=tmp_path / "side.gif")
    path = comparison_video(config)
    clip = Image.open(path)
    # 111 frames at 48 Hz (the payload is picked up at step 96), every second one kept for a 24 fps GIF
    assert clip.size == (2 * 320, 240) and clip.n_frames == 56
