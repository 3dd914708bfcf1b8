"""Run a controller in a robot's fixed-rate control loop, with a deadline and a fallback.

A user implements `RobotIO` for their robot (read an observation, send an action, optionally a
clock); `SimulatedRobot` makes any mbmeta robot look like one. `run_loop` ticks at a fixed rate.
Each tick it asks the controller for an action in a worker thread and waits at most until the
deadline; a late controller never blocks the loop: the robot gets the fallback (the next action of
the last plan, else the safe action) and the late result is dropped. Transitions that happened
while the controller was busy are reported to it (`observe`) as soon as it is free. Ctrl-C stops
the loop and the robot receives the safe action.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from typing import Protocol, runtime_checkable

import numpy as np

from controllers.base import Controller
from robots.base import RobotEnv


@runtime_checkable
class RobotIO(Protocol):
    """What a robot's control loop needs: read the latest observation, command an action."""

    def read_observation(self) -> np.ndarray: ...

    def send_action(self, action: np.ndarray) -> None: ...


class SimulatedRobot:
    """An mbmeta robot behind the `RobotIO` protocol: each sent action advances the simulation one step."""

    def __init__(self, env: RobotEnv, seed: int | None = None) -> None:
        self.env = env
        self.obs, _ = env.reset(seed=seed)
        self.done = False
        self.total_reward = 0.0
        self.last_reward = 0.0
        self.actions: list[np.ndarray] = []

    def read_observation(self) -> np.ndarray:
        return self.obs

    def send_action(self, action: np.ndarray) -> None:
        self.actions.append(np.asarray(action, dtype=np.float64))
        if self.done:
            return
        self.obs, self.last_reward, terminated, truncated, _ = self.env.step(action)
        self.total_reward += self.last_reward
        self.done = terminated or truncated


@dataclasses.dataclass
class LoopReport:
    """Per-step latency (tick to action sent, ms), which steps missed the deadline, and how it ended."""

    latencies_ms: list[float]
    missed: list[int]
    interrupted: bool = False

    @property
    def steps(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> str:
        return (f"{self.steps} steps, latency p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms, "
                f"{len(self.missed)} deadline misses" + (" (interrupted)" if self.interrupted else ""))


def run_loop(controller: Controller, robot: RobotIO, rate_hz: float, steps: int, safe_action: np.ndarray,
             deadline_s: float | None = None, stop_when_done: bool = True) -> LoopReport:
    """Control `robot` at `rate_hz` for `steps` ticks; each tick's action is due `deadline_s` after the tick
    (default: 80% of the period)."""
    period = 1.0 / rate_hz
    deadline = 0.8 * period if deadline_s is None else deadline_s
    safe_action = np.asarray(safe_action, dtype=np.float64)
    report = LoopReport([], [])
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mbmeta-controller")
    busy: concurrent.futures.Future | None = None
    unreported: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]] = []  # transitions not yet observed
    last: tuple[np.ndarray, np.ndarray] | None = None  # (observation, action sent)
    since_plan = 0
    next_tick = time.monotonic()
    try:
        for step in range(steps):
            tick = time.monotonic()
            obs = robot.read_observation()
            if last is not None:
                unreported.append((last[0], last[1], getattr(robot, "last_reward", 0.0), obs))
            if busy is not None and busy.done():
                busy = None  # a late result from an earlier tick: stale, dropped
            action = None
            if busy is None:
                for o, a, r, o2 in unreported:
                    controller.observe(o, a, r, o2, False)
                unreported.clear()
                busy = pool.submit(controller.act, obs)
                try:
                    action = busy.result(timeout=max(0.0, deadline - (time.monotonic() - tick)))
                    busy, since_plan = None, 0
                except concurrent.futures.TimeoutError:
                    pass
            if action is None:
                since_plan += 1
                fallback = controller.fallback_action(since_plan)
                action = safe_action if fallback is None else fallback
                report.missed.append(step)
            robot.send_action(action)
            report.latencies_ms.append(1e3 * (time.monotonic() - tick))
            last = (obs, action)
            if stop_when_done and getattr(robot, "done", False):
                break
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        robot.send_action(safe_action)
        pool.shutdown(wait=False, cancel_futures=True)
    return report
