"""Run a controller in a robot's fixed-rate control loop, with a deadline and a fallback.

A user implements `RobotIO` for their robot (read an observation, send an action, optionally a
clock); `SimulatedRobot` makes any mbmeta robot look like one. `run_loop` ticks at a fixed rate.
Each tick it asks the controller for an action in a worker thread and waits at most until the
deadline; a late controller never blocks the loop: the robot gets the fallback and the late action
is dropped. The fallback is the step of the newest plan in force that matches the current tick:
every plan comes back from the worker as a copy together with the tick of the observation it was
made from (a late plan too, once it finishes), so the loop thread never reads a plan the worker is
replacing, and row `tick - plan_tick` is the action that plan meant for now; before any plan, the
safe action. Transitions that happened while the controller was busy are reported to it
(`observe`) as soon as it is free. Ctrl-C stops the loop and the robot receives the safe action.
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
    busy: tuple[int, concurrent.futures.Future] | None = None  # (tick of its observation, the act in flight)
    in_force: tuple[int, np.ndarray] | None = None  # (tick of its observation, the newest finished plan)
    unreported: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]] = []  # transitions not yet observed
    last: tuple[np.ndarray, np.ndarray] | None = None  # (observation, action sent)

    def act_and_plan(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """In the worker: the action and a copy of the plan it came from, handed over together."""
        return controller.act(obs), controller.last_plan()

    next_tick = time.monotonic()
    try:
        for step in range(steps):
            tick = time.monotonic()
            obs = robot.read_observation()
            if last is not None:
                unreported.append((last[0], last[1], getattr(robot, "last_reward", 0.0), obs))
            if busy is not None and busy[1].done():  # a late act from an earlier tick: its action is stale,
                late_tick, future = busy  # but its plan is the newest one
                busy = None
                late_plan = future.result()[1]
                if late_plan is not None:
                    in_force = (late_tick, late_plan)
            action = None
            if busy is None:
                for o, a, r, o2 in unreported:
                    controller.observe(o, a, r, o2, False)
                unreported.clear()
                busy = (step, pool.submit(act_and_plan, obs))
                try:
                    action, plan = busy[1].result(timeout=max(0.0, deadline - (time.monotonic() - tick)))
                    busy = None
                    in_force = None if plan is None else (step, plan)
                except concurrent.futures.TimeoutError:
                    pass
            if action is None:
                action = safe_action if in_force is None else fallback_step(*in_force, step)
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


def fallback_step(plan_tick: int, plan: np.ndarray, tick: int) -> np.ndarray:
    """The action that a plan made from the observation of `plan_tick` meant for `tick` (its last row
    once the plan has run out)."""
    return plan[min(tick - plan_tick, len(plan) - 1)]
