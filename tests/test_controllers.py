"""One contract for every registered controller; adaptive MPC adapts every step; the real-time loop."""

import dataclasses
import time
import warnings

import numpy as np
import pytest
import torch

import robots
from controllers.base import Controller
from controllers.collection import collection_policy
from controllers.mpc import MPCConfig
from controllers.planners import PlannerConfig
from controllers.realtime import RobotIO, SimulatedRobot, run_loop
from controllers.registry import CONTROLLERS, ControllerConfig, make_controller
from mbmeta.grbal import TrainConfig, train
from mbmeta.maml import MetaConfig
from mbmeta.model import ModelConfig
from mbmeta.pearl import PEARLConfig, train_pearl
from mbmeta.rl2 import RL2Config, train_rl2
from robots.rollout import rollout

SMALL_PLANNER = PlannerConfig(horizon=4, population=16, iterations=2)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """A tiny GrBAL model, RL² policy and PEARL agent per robot, trained for a few seconds."""
    paths = {}
    for robot in robots.ROBOTS:
        config = TrainConfig(robot=robot, iterations=1, episodes_per_iteration=4, episode_length=60,
                             train_steps_per_iteration=20, model=ModelConfig(hidden=(16, 16)),
                             meta=MetaConfig(meta_batch_size=4, K=5, inner_lr_mode="per_parameter"))
        paths[robot] = str(train(config, tmp_path_factory.mktemp(robot), collection_policy, progress=False))
        rl2_env = robots.make(robot, episode_length=15)
        rl2_dir = tmp_path_factory.mktemp(f"{robot}-rl2")
        train_rl2(rl2_env, RL2Config(budget=60, trials_per_update=2, hidden=16, minibatches=1), rl2_dir, progress=False)
        paths[f"{robot}-rl2"] = str(rl2_dir / "checkpoint.pt")
        pearl_dir = tmp_path_factory.mktemp(f"{robot}-pearl")
        train_pearl(rl2_env, PEARLConfig(budget=30, train_tasks=2, initial_steps=15, hidden=16, layers=1,
                                         encoder_hidden=16, updates_per_iteration=2, meta_batch=2, batch_size=8,
                                         context_size=8), pearl_dir, progress=False)
        paths[f"{robot}-pearl"] = str(pearl_dir / "checkpoint.pt")
    return paths


def build(name, robot, checkpoints, backend="torch"):
    env = robots.make(robot, episode_length=30)
    checkpoint = checkpoints[f"{robot}-{name}"] if name in ("rl2", "pearl") else checkpoints[robot]
    config = ControllerConfig(controller=name, checkpoint=checkpoint,
                              mpc=MPCConfig(planner=SMALL_PLANNER, backend=backend))
    return env, make_controller(config, env)


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_every_controller_keeps_the_contract(name, robot_name, checkpoints):
    env, controller = build(name, robot_name, checkpoints)
    assert isinstance(controller, Controller)
    episode = rollout(env, controller, seed=0, max_steps=12)
    low, high = env.action_space.low, env.action_space.high
    assert episode.actions.shape == (episode.length, *env.action_space.shape)
    assert np.all(np.isfinite(episode.actions)) and np.all(episode.actions >= low) and np.all(episode.actions <= high)
    obs, _ = env.reset(seed=1)
    controller.reset(obs, new_task=False)  # a new episode of the same task
    bad = obs.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="observation must be finite"):
        controller.act(bad)
    with pytest.raises(ValueError, match="observation must have shape"):
        controller.act(obs[:-1])


def fuzz_values(obs):
    """(label, bad observation) pairs: non-finite, wrong shape, wrong dtype."""
    nan, inf = obs.copy(), obs.copy()
    nan[1], inf[2] = np.nan, -np.inf
    return [("nan", nan), ("inf", inf), ("short", obs[:-1]), ("2d", obs[None]), ("text", np.array(["a"] * len(obs))),
            ("object", {"obs": obs})]


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_bad_input_to_act_and_observe_is_refused_or_skipped_and_never_leaks(name, robot_name, checkpoints):
    env, controller = build(name, robot_name, checkpoints)
    obs, _ = env.reset(seed=0)
    controller.reset(obs)
    action = controller.act(obs)
    next_obs, reward, *_ = env.step(action)
    for label, bad in fuzz_values(obs):
        with pytest.raises(ValueError, match="observation"):
            controller.act(bad)
        args = dict(obs=obs, action=action, reward=reward, next_obs=next_obs)
        for field in ("obs", "next_obs"):
            before = controller.info()["skipped_transitions"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if label in ("nan", "inf"):  # the documented choice: skipped and counted
                    controller.observe(**{**args, field: bad}, done=False)
                    assert controller.info()["skipped_transitions"] == before + 1, (label, field)
                else:
                    with pytest.raises(ValueError, match=f"observe\\({field}\\)"):
                        controller.observe(**{**args, field: bad}, done=False)
    with pytest.raises(ValueError, match=r"observe\(reward\)"):
        controller.observe(obs, action, [1.0, 2.0], next_obs, False)
    huge = obs.copy()
    huge[3] = 1e30
    skipped = controller.info()["skipped_transitions"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for reward_value in (np.nan, np.inf, 1e30):
            controller.observe(obs, action, reward_value, next_obs, False)
        controller.observe(obs, action, reward, huge, False)
        controller.observe(huge, action, reward, next_obs, False)
        for _ in range(3):
            assert np.all(np.isfinite(controller.act(huge))) and np.all(np.isfinite(controller.act(obs)))
    assert controller.info()["skipped_transitions"] == skipped + 5
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert sum("skipped a transition" in m for m in messages) <= 1, "warned once, not per transition"
    assert sum("clipped to the robot's observation bounds" in m for m in messages) == 1
    assert not [w for w in caught if w.category is not RuntimeWarning], "no numpy warnings leak"
    controller.observe(obs, action, reward, next_obs, False)  # a good transition is still taken
    assert controller.info()["skipped_transitions"] == skipped + 5


def test_rl2_keeps_its_memory_within_a_task_and_forgets_on_a_new_one(checkpoints):
    env, controller = build("rl2", "ant", checkpoints)
    obs, _ = env.reset(seed=0)
    controller.reset(obs, new_task=True)
    action = controller.act(obs)
    next_obs, reward, *_ = env.step(action)
    controller.observe(obs, action, reward, next_obs, False)
    controller.act(next_obs)
    remembered = controller.h.clone()
    controller.reset(obs, new_task=False)
    assert torch.equal(controller.h, remembered) and controller.prev_reward == reward
    controller.reset(obs, new_task=True)
    assert controller.h is None and controller.prev_reward == 0.0


def test_unknown_controller_and_missing_checkpoint_are_clear_errors():
    env = robots.make("ant")
    with pytest.raises(ValueError, match="unknown controller 'pid'; choose one of"):
        make_controller(ControllerConfig(controller="pid"), env)
    with pytest.raises(ValueError, match="needs a checkpoint"):
        make_controller(ControllerConfig(controller="cem_adaptive"), env)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_adaptive_mpc_adapts_every_step_and_plans_with_the_adapted_parameters(checkpoints, backend):
    env, controller = build("cem_adaptive", "ant", checkpoints, backend=backend)
    env.set_task("broken-leg-3")
    planned_with = []
    original = controller.rollout.set_params
    controller.rollout.set_params = lambda params: (planned_with.append(params), original(params))
    episode = rollout(env, controller, seed=0, max_steps=15)
    k = controller.config.k
    assert controller.adapter.adaptations == episode.length - k  # every step once k transitions exist
    adapted = planned_with[1:]  # the first call is reset() installing the prior
    assert len(adapted) == episode.length - k
    assert adapted[-1] is controller.adapter.params and adapted[-1] is not controller.adapter.prior
    prior_w0 = controller.adapter.prior["w0"]
    assert all(not torch.equal(p["w0"], prior_w0) for p in adapted if p is not controller.adapter.prior)
    _, plain = build("cem_mpc", "ant", checkpoints, backend=backend)
    rollout(env, plain, seed=0, max_steps=15)
    assert plain.adapter.adaptations == 0


@pytest.mark.parametrize("adaptive", [True, False])
def test_with_mirror_the_mpc_plans_in_the_frame_whose_model_explains_the_window(checkpoints, adaptive):
    """Transitions the model predicts exactly keep its own frame; their mirror image switches the rollout
    (and GrBAL's adaptation window) to the mirror, where the model predicts them exactly again."""
    from robots.ant import AntEnv

    env = robots.make("ant", episode_length=30)
    config = ControllerConfig(controller="cem_adaptive" if adaptive else "cem_mpc", checkpoint=checkpoints["ant"],
                              mpc=MPCConfig(planner=SMALL_PLANNER, backend="torch", mirror=True))
    controller = make_controller(config, env)
    model, mirror = controller.model, AntEnv.mirror
    obs, _ = env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-0.5, 0.5, (controller.config.k, 8))
    with torch.no_grad():
        nxt = model.predict(torch.as_tensor(np.repeat(obs[None], len(actions), 0), dtype=torch.float32),
                            torch.as_tensor(actions, dtype=torch.float32)).double().numpy()
    nxt = np.clip(nxt, env.observation_space.low, env.observation_space.high)  # a tiny model's contact term can dip < 0
    adapted_on = []
    adapt = controller.adapter.adapt
    controller.adapter.adapt = lambda *window: (adapted_on.append(window[0]), adapt(*window))[1]
    for flip, expected in [(False, False), (True, True)]:
        controller.reset(obs)
        start = mirror.obs(obs) if flip else obs
        for a, n in zip(actions, nxt, strict=True):
            controller.observe(start, mirror.action(a) if flip else a, 0.0, mirror.obs(n) if flip else n, False)
        controller.act(start)
        assert controller.rollout.mirrored is expected
        if adaptive:  # the window adapted on is the one in the chosen frame: the model's own
            np.testing.assert_allclose(adapted_on[-1], np.repeat(obs[None], len(actions), 0))
    assert controller.info()["mirrored_steps"] == 1
    states = controller.rollout(obs.astype(np.float32), actions[None].astype(np.float32))
    controller.rollout.mirrored = False
    plain = controller.rollout(mirror.obs(obs).astype(np.float32), mirror.action(actions[None]).astype(np.float32))
    np.testing.assert_allclose(states, mirror.obs(plain), rtol=1e-5, atol=1e-5)


def test_mirror_on_a_robot_without_one_is_a_clear_error(checkpoints):
    from mbmeta.config import FieldError

    with pytest.raises(FieldError, match="mirror.*declares no mirror symmetry"):
        make_controller(ControllerConfig(controller="cem_adaptive", checkpoint=checkpoints["quadrotor"],
                                         mpc=MPCConfig(planner=SMALL_PLANNER, mirror=True)),
                        robots.make("quadrotor"))


def test_dead_actuators_reach_the_model_as_zero_in_plans_and_in_the_adaptation_window(checkpoints):
    """Told that leg 3's two actuators are dead, the MPC predicts with their commands at 0 (the motors at zero
    torque) and adapts on a window where they are 0; the action it returns is still the planner's."""
    env = robots.make("ant", episode_length=30)
    mpc = MPCConfig(planner=SMALL_PLANNER, backend="torch", dead_actuators=(6, 7))
    controller = make_controller(ControllerConfig(controller="cem_adaptive", checkpoint=checkpoints["ant"], mpc=mpc),
                                 env)
    obs, _ = env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (1, 4, 8)).astype(np.float32)
    zeroed = actions.copy()
    zeroed[..., 6:] = 0.0
    start = obs.astype(np.float32)
    told = controller.rollout(start, actions)
    np.testing.assert_array_equal(told, controller.rollout.inner(start, zeroed))
    assert not np.allclose(told, controller.rollout.inner(start, actions))
    adapted_on = []
    adapt = controller.adapter.adapt
    controller.adapter.adapt = lambda *window: (adapted_on.append(window[1]), adapt(*window))[1]
    episode = rollout(env, controller, seed=0, max_steps=8)
    assert adapted_on and all(np.all(a[:, 6:] == 0) and np.any(a[:, :6] != 0) for a in adapted_on)
    assert np.any(np.asarray(episode.actions)[:, 6:] != 0)  # the commands it sends are not masked


@pytest.mark.parametrize("dead, mirror, message", [
    ((8,), False, r"dead_actuators.*indices into the 8 actions \(0\.\.7\)"),
    ((-1,), False, r"dead_actuators: must be >= 0, got -1"),
    ((6, 7), True, r"dead_actuators.*nothing to guess: leave mirror false")])
def test_dead_actuators_out_of_range_or_with_the_mirror_are_a_clear_error(checkpoints, dead, mirror, message):
    from mbmeta.config import FieldError

    with pytest.raises(FieldError, match=message):
        make_controller(ControllerConfig(controller="cem_adaptive", checkpoint=checkpoints["ant"],
                                         mpc=MPCConfig(planner=SMALL_PLANNER, dead_actuators=dead, mirror=mirror)),
                        robots.make("ant"))


def test_the_mpc_plans_with_the_speed_capped_reward(checkpoints):
    """With `speed_cap`, candidates are scored by the robot's `planning_reward` at that cap."""
    from robots.ant import OBS_VX

    env = robots.make("ant")
    controller = make_controller(ControllerConfig(controller="cem_mpc", checkpoint=checkpoints["ant"],
                                                  mpc=MPCConfig(planner=SMALL_PLANNER, speed_cap=0.5)), env)
    obs, _ = env.reset(seed=0)
    states = np.repeat(obs[None], 2, axis=0)
    states[:, OBS_VX] = [0.2, 2.0]
    actions = np.zeros((2, env.action_space.shape[0]))
    np.testing.assert_allclose(controller.reward(states, actions, states),
                               env.reward(states, actions, states) - [0.0, 1.5])


def test_the_mpc_ends_imagined_episodes_at_the_configured_rise_limit(checkpoints):
    """With `kick_margin` or `rise_cap` (and the margin), candidates are scored with the robot's
    `planning_terminal` at that limit: a torso rising at 1.2 m/s from 0.45 m goes on by default (a kick 2 m/s
    stronger would not carry it out; a 3 m/s one would), and ends under a flat cap of 1.0, not of 2.0."""
    from robots.ant import OBS_VZ, OBS_Z

    env = robots.make("ant")
    obs, _ = env.reset(seed=0)
    rising = obs.copy()
    rising[OBS_Z], rising[OBS_VZ] = 0.45, 1.2
    for limits, expected in (({}, False), ({"kick_margin": 3.0}, True), ({"rise_cap": 1.0}, True),
                             ({"rise_cap": 2.0}, False), ({"rise_cap": 2.0, "safety_margin": 0.5}, True)):
        controller = make_controller(ControllerConfig(
            controller="cem_mpc", checkpoint=checkpoints["ant"], mpc=MPCConfig(planner=SMALL_PLANNER, **limits)), env)
        assert bool(controller.is_terminal(rising[None])[0]) is expected, limits


def test_an_mpc_on_your_own_reward_and_terminal_needs_no_planning_keywords(checkpoints):
    """A robot of one's own (logged data, no RobotEnv) brings `reward(obs, action, next_obs)` and
    `is_terminal(next_obs)`: with the default settings the controller calls them with nothing else."""
    from controllers.mpc import MPCController
    from mbmeta.grbal import load_model

    env = robots.make("ant")
    obs, _ = env.reset(seed=0)
    model, step_sizes, _ = load_model(checkpoints["ant"])
    controller = MPCController(env.observation_space, env.action_space, model, step_sizes,
                               lambda o, a, n: env.reward(o, a, n), lambda n: env.is_terminal(n),
                               MPCConfig(planner=SMALL_PLANNER))
    assert env.action_space.contains(controller.act(obs).astype(np.float32))


def test_the_collecting_mpc_keeps_the_flat_rise_cap_the_shipped_models_were_collected_under(checkpoints):
    """The deployed ant plans with its kick margin; the collecting MPC (margin 0) with the flat 1.0 m/s cap:
    a torso rising at 1.2 m/s from 0.45 m ends its imagined episode, not the deployed one's."""
    from mbmeta.grbal import load_model
    from robots.ant import OBS_VZ, OBS_Z

    env = robots.make("ant")
    obs, _ = env.reset(seed=0)
    rising = obs.copy()
    rising[OBS_Z], rising[OBS_VZ] = 0.45, 1.2
    model, step_sizes, _ = load_model(checkpoints["ant"])
    collecting = collection_policy(1, env, model, step_sizes, 5, np.random.default_rng(0))
    deployed = make_controller(ControllerConfig(controller="cem_adaptive", checkpoint=checkpoints["ant"]), env)
    assert bool(collecting.is_terminal(rising[None])[0]) and not bool(deployed.is_terminal(rising[None])[0])


def test_the_collecting_mpc_plans_as_the_shipped_models_were_collected_whatever_the_deployed_defaults(
        checkpoints, monkeypatch):
    """Training collects with the horizon and limits the shipped models were collected with, so that changing
    the deployed defaults (say to GrBAL's horizon 10, or the tilt limit) does not silently change what a
    retrained seed learns from."""
    from controllers import collection
    from mbmeta.grbal import load_model

    env = robots.make("ant")
    model, step_sizes, _ = load_model(checkpoints["ant"])
    deployed = collection.default_mpc("ant")
    shorter = dataclasses.replace(deployed, planner=dataclasses.replace(deployed.planner, horizon=10))
    monkeypatch.setattr(collection, "default_mpc", lambda robot: shorter)
    collecting = collection.collection_policy(1, env, model, step_sizes, 5, np.random.default_rng(0))
    assert collecting.config.planner.horizon == 15
    assert collecting.config.planner.population == deployed.planner.population
    assert deployed.tilt_limit == 45.0 and collecting.config.tilt_limit is None
    assert collecting.config.rise_cap == 1.0 and collecting.config.safety_margin == 0.0


def test_mpc_options_that_the_robot_or_the_rule_cannot_use_are_clear_errors(checkpoints):
    from mbmeta.config import FieldError

    refusals = {"speed_cap": "QuadrotorEnv's reward pays no forward speed",
                "effort_weight": "QuadrotorEnv does not reweigh",
                **{limit: "a limit of the ant's planner; QuadrotorEnv's planner has none"
                   for limit in ("rise_cap", "kick_margin", "tilt_limit")}}
    for option, message in refusals.items():  # options of the ant's planning objective, on the quadrotor
        with pytest.raises(ValueError, match=f"MPCConfig.{option}: {message}"):
            make_controller(ControllerConfig(controller="cem_mpc", checkpoint=checkpoints["quadrotor"],
                                             mpc=MPCConfig(planner=SMALL_PLANNER, **{option: 0.5})),
                            robots.make("quadrotor"))
    for option, value in (("speed_cap", 0.0), ("effort_weight", -0.1), ("rise_cap", 0.0), ("kick_margin", -1.0),
                          ("tilt_limit", 0.0), ("tilt_limit", 181.0)):
        with pytest.raises(FieldError, match=option):
            MPCConfig(**{option: value})
    with pytest.raises(FieldError, match="MPCConfig.forgetting: .* needs from_prior false"):
        MPCConfig(forgetting=0.01)
    assert MPCConfig(from_prior=False, forgetting=0.01).forgetting == 0.01


def test_the_planner_scores_rollouts_with_the_configured_safety_margin(checkpoints):
    """With `safety_margin`, an imagined state inside the margin ends the imagined episode: a plan whose
    first predicted state is there scores only that step's reward."""
    env = robots.make("quadrotor", episode_length=30)
    obs, _ = env.reset(seed=0)
    tilted = obs.copy()
    tilted[15] = np.cos(np.radians(50))  # 50 degrees of tilt: alive, but inside a 0.3 margin (42 degrees)
    for margin, expected in ((0.0, False), (0.3, True)):
        config = ControllerConfig(controller="cem_mpc", checkpoint=checkpoints["quadrotor"],
                                  mpc=MPCConfig(planner=SMALL_PLANNER, safety_margin=margin))
        controller = make_controller(config, env)
        assert bool(controller.is_terminal(tilted[None])[0]) is expected
        assert bool(env.is_terminal(tilted[None])[0]) is False


class Sleepy(Controller):
    """Returns the step number as its action, but sleeps far past the deadline on chosen steps."""

    def __init__(self, env, slow_steps, sleep_s):
        super().__init__(env.observation_space, env.action_space)
        self.calls, self.slow_steps, self.sleep_s = 0, slow_steps, sleep_s
        self.observed = 0

    def _act(self, obs):
        step = self.calls
        self.calls += 1
        if step in self.slow_steps:
            time.sleep(self.sleep_s)
        return np.full(self.action_space.shape, 0.01 * step)

    def _observe(self, *args):
        self.observed += 1

    def last_plan(self):
        return np.full((3, *self.action_space.shape), -0.5)


def test_a_late_controller_gets_the_fallback_and_the_loop_keeps_its_rate():
    env = robots.make("quadrotor", reference="hover")
    controller = Sleepy(env, slow_steps={3}, sleep_s=0.12)
    robot = SimulatedRobot(env, seed=0)
    assert isinstance(robot, RobotIO)
    rate, steps = 25.0, 15  # 40 ms period, 32 ms deadline
    start = time.monotonic()
    report = run_loop(controller, robot, rate, steps, safe_action=np.zeros(4))
    elapsed = time.monotonic() - start
    assert report.steps == steps
    assert 3 in report.missed and 0 not in report.missed and steps - 1 not in report.missed
    for step in report.missed:
        np.testing.assert_array_equal(robot.actions[step], -0.5)  # the fallback, not a stale plan
    assert max(report.latencies_ms) < 32 + 25, "no tick waited for the sleeping controller"
    assert elapsed < 1.5 * steps / rate, "the loop kept its rate"
    np.testing.assert_array_equal(robot.actions[-1], 0.0)  # the safe action at the end
    assert controller.observed >= steps - len(report.missed) - 2  # transitions reported once it was free
    assert "deadline misses" in report.summary()


class TickRobot:
    """A RobotIO whose observation carries the tick number (in obs[0], scaled by 0.01)."""

    def __init__(self, env):
        self.obs, _ = env.reset(seed=0)
        self.actions = []

    def read_observation(self):
        obs = self.obs.copy()
        obs[0] = 0.01 * len(self.actions)
        return obs

    def send_action(self, action):
        self.actions.append(np.asarray(action, dtype=np.float64))


class AlternatingLate(Controller):
    """Plans from the tick in its observation: row j of a plan is (tick, j) scaled by 0.01. The calls
    alternate: one on time, then two that finish 1.5 periods late (so a late plan gets into force)."""

    def __init__(self, env, period):
        super().__init__(env.observation_space, env.action_space)
        self.calls, self.period, self.plan = 0, period, None

    def _act(self, obs):
        tick = round(100 * obs[0])
        if self.calls % 3:
            time.sleep(1.5 * self.period)
        self.calls += 1
        self.plan = np.array([[0.01 * tick, 0.01 * j, 0.0, 0.0] for j in range(30)])
        return self.plan[0]

    def last_plan(self):
        return self.plan.copy()


def test_the_fallback_is_the_step_of_the_plan_in_force_that_matches_the_tick():
    env = robots.make("quadrotor", reference="hover")
    rate = 25.0
    controller, robot = AlternatingLate(env, 1 / rate), TickRobot(env)
    report = run_loop(controller, robot, rate, 24, safe_action=np.zeros(4))
    assert len(report.missed) >= 8
    on_time = [s for s in range(report.steps) if s not in report.missed]
    from_late_plans = 0
    for step in report.missed:
        plan_tick, row = np.round(100 * robot.actions[step][:2]).astype(int)
        assert row == step - plan_tick, (step, plan_tick, row)  # the row of that plan meant for this tick
        last_on_time = max(s for s in on_time if s < step)
        assert last_on_time <= plan_tick < step  # the newest plan, never an older one
        from_late_plans += plan_tick in report.missed
    assert from_late_plans >= 1, "a plan that finished late was in force for a later tick"


def test_ctrl_c_stops_the_loop_and_sends_the_safe_action():
    class Interrupting(SimulatedRobot):
        def send_action(self, action):
            super().send_action(action)
            if len(self.actions) == 5:
                raise KeyboardInterrupt

    env = robots.make("ant")
    robot = Interrupting(env, seed=0)
    controller = Sleepy(env, slow_steps=set(), sleep_s=0)
    report = run_loop(controller, robot, 200.0, 50, safe_action=np.zeros(8))
    assert report.interrupted and len(robot.actions) == 6
    np.testing.assert_array_equal(robot.actions[-1], 0.0)


def test_pearl_keeps_its_context_within_a_task_and_forgets_on_a_new_one(checkpoints):
    env, controller = build("pearl", "quadrotor", checkpoints)
    episode = rollout(env, controller, seed=0, max_steps=5)
    assert controller.info()["context"] == 5 and controller.info()["posterior_std"] < 1.0
    z = controller.z.clone()
    controller.reset(episode.observations[-1], new_task=False)
    assert controller.info()["context"] == 5 and torch.equal(controller.z, z)
    rollout(env, controller, seed=1, max_steps=20, new_task=False)
    assert controller.info()["context"] == 8  # a window of the context size it was trained with
    controller.reset(episode.observations[-1], new_task=True)
    assert controller.info() == {"skipped_transitions": 0, "context": 0, "posterior_std": 1.0}
