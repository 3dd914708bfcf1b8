"""Run independent jobs (episodes, evaluations) on Ray workers, with the same results as running them in turn.

`map_ordered(fn, jobs, workers)` is `[fn(job) for job in jobs]` when `workers` is 1, and otherwise
runs the calls as Ray tasks, at most `workers` at a time, on this machine (`ray.init()`) or on an
existing cluster (`address`). Results come back in job order, each whole: a job is a pure function
of its inputs, so when a worker process dies mid-job Ray starts another and re-runs the job from the
start, and the caller gets neither a partial result nor a duplicate.

Ray is optional: `pip install 'mbmeta[ray]'`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")

#: How often Ray re-runs a job whose worker process died (not one that raised an exception: that is a bug).
MAX_RETRIES = 3


def require_ray() -> Any:
    """The `ray` module, or an error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError("--workers > 1 and --ray-address need Ray: pip install 'mbmeta[ray]'") from None
    return ray


def init_ray(workers: int, address: str | None = None) -> Any:
    """Start Ray on this machine with `workers` CPUs, or connect to the cluster at `address`; idempotent."""
    ray = require_ray()
    if not ray.is_initialized():
        if address is not None:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    return ray


def _call(fn: Callable[[Job], Result], job: Job) -> Result:
    return fn(job)


def map_ordered(fn: Callable[[Job], Result], jobs: Sequence[Job], workers: int = 1,
                address: str | None = None) -> list[Result]:
    """`[fn(job) for job in jobs]`, computed by up to `workers` Ray workers when workers > 1 or an address is given."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 and address is None:
        return [fn(job) for job in jobs]
    ray = init_ray(workers, address)
    remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_call)
    fn_ref = ray.put(fn)  # shipped to the object store once, not once per job
    results: list[Any] = [None] * len(jobs)
    pending: dict[Any, int] = {}
    for index, job in enumerate(jobs):
        if len(pending) >= workers:
            done, _ = ray.wait(list(pending), num_returns=1)
            results[pending.pop(done[0])] = ray.get(done[0])
        pending[remote.remote(fn_ref, job)] = index
    for ref, index in pending.items():
        results[index] = ray.get(ref)
    return results
