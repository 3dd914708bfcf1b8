"""Videos of episodes, rendered headless: MuJoCo through EGL (or OSMesa), pybullet through its CPU renderer.

Each frame gets an overlay in its corner: the controller, the task in force, the step and the robot's
live task metric; a banner marks the step where the dynamics change (a leg breaks, a payload is picked
up) and the end of an episode that terminated early. MP4 is written with the ffmpeg that imageio-ffmpeg
ships, GIF with Pillow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from robots.base import RobotEnv
from robots.rollout import Episode

BANNER_SECONDS = 1.5  # how long the change banner stays up
GIF_FPS = 25


def check_can_render(env: RobotEnv) -> None:
    """Render one frame of `env` or raise a ValueError saying what this machine lacks."""
    env.render_mode = "rgb_array"
    try:
        env.reset(seed=0)
        frame = env.render()
    except Exception as err:  # renderers fail in many ways without a display or GPU
        raise ValueError(f"this machine cannot render {type(env).__name__} offscreen ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); MuJoCo needs EGL or OSMesa: apt-get "
                         f"install libegl1 libgl1-mesa-dri (or libosmesa6 with MUJOCO_GL=osmesa)") from None
    if frame is None:
        raise ValueError(f"{type(env).__name__} does not render frames")


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def overlay(frame: np.ndarray, lines: list[str], banner: str | None = None) -> np.ndarray:
    """`frame` with `lines` in a dark box at the top left and an optional red `banner` at the bottom."""
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    draw = ImageDraw.Draw(image, "RGBA")
    font = _font(max(10, image.height // 22))
    line_height = font.getbbox("Ag")[3] + 3
    width = max(draw.textlength(line, font=font) for line in lines) + 8
    draw.rectangle([0, 0, width, line_height * len(lines) + 4], fill=(0, 0, 0, 150))
    for i, line in enumerate(lines):
        draw.text((4, 2 + i * line_height), line, fill=(255, 255, 255), font=font)
    if banner:
        top = image.height - line_height - 6
        draw.rectangle([0, top, image.width, image.height], fill=(170, 20, 20, 200))
        draw.text((6, top + 3), banner, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def annotate(frames: list[np.ndarray], episode: Episode, env: RobotEnv, controller: str) -> list[np.ndarray]:
    """Overlay each frame (frame i shows the state before step i; one more after the last step) with the
    controller, the task in force, the step and the live task metric; banners mark a change of dynamics and
    an early end."""
    infos = [episode.start_info, *episode.infos]
    banner_steps = int(BANNER_SECONDS / env.dt)
    changed_at = [i for i in range(1, len(infos)) if infos[i]["task"] != infos[i - 1]["task"]]
    out = []
    for i, frame in enumerate(frames[: len(infos)]):
        info = infos[i]
        lines = [controller, f"task {info['task']}", f"step {i} ({i * env.dt:.1f} s)"]
        if "x_position" in info and "y_position" not in info:
            lines.append(f"distance {info['x_position'] - episode.start_info['x_position']:.2f} m")
        if env.step_metric is not None:
            key, label = env.step_metric
            lines.append(f"{label.split(' (')[0]} {info[key]:.2f}")
        banner = next((f"dynamics change: {infos[c]['task']}" for c in changed_at if c <= i < c + banner_steps), None)
        if episode.terminated and i == len(infos) - 1:
            banner = f"step {i}: {env.termination_reason(episode.observations[-1])}"
        out.append(overlay(frame, lines, banner))
    return out


def side_by_side(clips: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Clips of equal frame size side by side; a clip that ended early holds its last frame."""
    length = max(len(c) for c in clips)
    return [np.concatenate([c[min(i, len(c) - 1)] for c in clips], axis=1) for i in range(length)]


def write_video(path: str | Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write `frames` as MP4 (H.264) or GIF, by the file's suffix."""
    path = Path(path)
    if path.suffix.lower() == ".gif":  # at most GIF_FPS frames a second (viewers slow faster GIFs down)
        every = max(1, math.ceil(fps / GIF_FPS))
        images = [Image.fromarray(f).convert("P", palette=Image.Palette.ADAPTIVE, colors=128) for f in frames[::every]]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 * every / fps), loop=0,
                       optimize=True)
    elif path.suffix.lower() in (".mp4", ".mov", ".mkv"):
        import imageio.v2 as imageio

        even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]  # H.264 wants even sizes
        imageio.mimwrite(path, even, fps=fps, macro_block_size=1)
    else:
        raise ValueError(f"--video: write .mp4 or .gif, got {path.name!r}")
    return path
