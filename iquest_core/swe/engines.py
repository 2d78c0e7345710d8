"""Where SWE environments run: in this process (`local`: tool calls on the rollout's thread pool) or in Ray
actors (`ray`: a fixed set of worker actors, each holding many environments, placed by Ray on any node of
the cluster). Both give handles with the SWEEnv interface: reset() -> str, step(action) -> StepResult,
close()."""

from __future__ import annotations

import itertools
from typing import Any

from iquest_core.swe import SWEEnv, Task

ENGINES = ("local", "ray")


class EnvWorker:
    """A Ray actor's body: SWEEnvs by key."""

    def __init__(self) -> None:
        self.envs: dict[int, SWEEnv] = {}

    def open(self, key: int, task: dict, options: dict) -> None:
        from iquest_core.swe.tasks import task_from_record

        self.envs[key] = SWEEnv(task_from_record(task), **options)

    def reset(self, key: int) -> str:
        return self.envs[key].reset()

    def step(self, key: int, action: Any):
        return self.envs[key].step(action)

    def close(self, key: int) -> None:
        self.envs.pop(key).close()


class RayEnv:
    """Handle on one environment inside an EnvWorker actor."""

    def __init__(self, worker, key: int) -> None:
        self.worker, self.key = worker, key

    def reset(self) -> str:
        import ray
        return ray.get(self.worker.reset.remote(self.key))

    def step(self, action: Any):
        import ray
        return ray.get(self.worker.step.remote(self.key, action))

    def close(self) -> None:
        import ray
        ray.get(self.worker.close.remote(self.key))


class EnvFactory:
    """make(task) -> an environment handle on the chosen engine. For ray, `workers` actors are started
    once (ray.init() joins a running cluster when RAY_ADDRESS is set, else starts a local one)."""

    def __init__(self, engine: str = "local", *, workers: int = 2, **options: Any) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
        self.engine, self.options = engine, options
        self._keys = itertools.count()
        if engine == "ray":
            import ray
            if not ray.is_initialized():
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            actor = ray.remote(num_cpus=0)(EnvWorker)
            self.workers = [actor.remote() for _ in range(workers)]

    def make(self, task: Task):
        if self.engine == "local":
            return SWEEnv(task, **self.options)
        import ray
        key = next(self._keys)
        worker = self.workers[key % len(self.workers)]
        ray.get(worker.open.remote(key, task.to_dict(), self.options))
        return RayEnv(worker, key)

    def shutdown(self) -> None:
        if self.engine == "ray":
            import ray
            for worker in self.workers:
                ray.kill(worker)
