import pytest

from iquest_core.swe.agents import AGENTS, play
from iquest_core.swe.engines import EnvFactory


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_engines_give_the_same_verdicts(tasks, engine):
    """Environments in Ray actors (two workers, four environments) behave as local ones: the oracle
    resolves, the test-tamperer gets 0."""
    if engine == "ray":
        pytest.importorskip("ray")
    factory = EnvFactory(engine, workers=2, max_turns=10)
    try:
        envs = [factory.make(task) for task in tasks for _ in range(2)]
        results = [play(env, AGENTS["oracle" if i % 2 == 0 else "test_tamperer"](tasks[i // 2]))
                   for i, env in enumerate(envs)]
        for env in envs:
            env.close()
    finally:
        factory.shutdown()
    assert [r.reward for r in results] == [1.0, 0.0] * len(tasks)
    assert [r.info["resolved"] for r in results] == [True, False] * len(tasks)


def test_unknown_engine_is_named():
    with pytest.raises(ValueError, match="engine: expected one of"):
        EnvFactory("docker")
