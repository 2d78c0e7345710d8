import pytest

from iquest_core.swe import SWEEnv
from iquest_core.swe.agents import AGENTS, patch_edits, play


def play_task(task, actions, **kwargs):
    with SWEEnv(task, **kwargs) as env:
        return play(env, actions)


@pytest.mark.parametrize("agent,expected", [("oracle", 1.0), ("noop", 0.0), ("test_tamperer", 0.0),
                                            ("history_peeker", 0.0)])
def test_scripted_agents(tasks, agent, expected):
    for task in tasks:
        result = play_task(task, AGENTS[agent](task))
        assert result.reward == expected and result.info["resolved"] == (expected == 1.0), (agent, result)


def test_tamperer_without_restoring_would_pass(tasks):
    """Control: the tamperer's tests do pass when run as the agent left them (so its 0 comes from the restore)."""
    task = tasks[0]
    with SWEEnv(task) as env:
        env.reset()
        for action in AGENTS["test_tamperer"](task)[:-1]:
            env.step(action)
        ran = env.step({"tool": "bash", "command": "python -m pytest -q -p no:cacheprovider " + task.test_files[0]})
    assert "[exit code 0]" in ran.observation and "passed" in ran.observation


def test_isolation(tasks):
    task = tasks[0]
    fix_only = [line[1:].strip() for line in task.patch.splitlines()
                if line.startswith("+") and not line.startswith("+++")]
    with SWEEnv(task) as env:
        env.reset()
        git = env.step({"tool": "bash", "command": "git log; echo rc=$?"}).observation
        assert "not a git repository" in git and "rc=128" in git
        for needle in fix_only:
            found = env.step({"tool": "bash", "command": f"grep -rlF -e '{needle}' /workspace /tmp; echo rc=$?"})
            assert found.observation.split() == ["[exit", "code", "0]", "rc=1"]
            assert "exit code 1" in env.step({"tool": "search", "pattern": needle.replace("+", "\\+")}).observation
        connect = "python -c \"import socket; socket.create_connection(('1.1.1.1', 80), 3)\""
        net = env.step({"tool": "bash", "command": connect})
        assert "Network is unreachable" in net.observation
        for path in ("/usr/x", "/tmp/../etc/x", "/root/x"):
            assert "exit code 1" in env.step({"tool": "bash", "command": f"echo x > {path}"}).observation
        assert "outside the workspace" in env.step({"tool": "create", "path": "../escape", "text": "x"}).observation
        env.step({"tool": "bash", "command": "ln -s / rootlink"})
        assert "outside the workspace" in env.step({"tool": "view", "path": "rootlink/etc/passwd"}).observation
        assert "exit code 0" in env.step({"tool": "bash", "command": "echo ok > inside.txt"}).observation
        assert (env.workspace / "inside.txt").read_text() == "ok\n"


def test_malformed_actions_are_observations(tasks):
    with SWEEnv(tasks[0], max_turns=10) as env:
        env.reset()
        for action, message in [({"tool": "rm_rf"}, "unknown tool 'rm_rf'"),
                                ("bash ls", "an action is a JSON object"),
                                ({"tool": "bash"}, "missing argument 'command'"),
                                ({"tool": "view", "path": 3}, "view.path: expected str"),
                                ({"tool": "str_replace", "path": "README.md", "old": "zzz", "new": ""},
                                 "occurs 0 times")]:
            result = env.step(action)
            assert message in result.observation and not result.done
        assert sorted(p.name for p in env.workspace.iterdir()) == ["README.md", "logo.png", "mathlib", "tests"]


def test_turn_limit_verifies(tasks):
    task = tasks[0]
    edits = [a for a in AGENTS["oracle"](task) if a["tool"] != "submit"]
    result = play_task(task, edits + [{"tool": "bash", "command": "true"}] * 3, max_turns=len(edits))
    assert result.done and result.reward == 1.0 and "turn limit" in result.observation


def test_patch_edits_reads_hunks():
    patch = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n"
    assert patch_edits(patch) == [("m.py", "a\nb\nd\n", "a\nc\nd\n")]


def test_environment_under_tmp_is_visible_in_the_sandbox(tmp_path, mathlib):
    """A repository environment made by create_environment (here without packages) is what the sandbox's
    python runs, also from under /tmp (which the sandbox replaces with its own)."""
    from iquest_core.sandbox import run_command
    from iquest_core.swe import create_environment
    from iquest_core.swe.environment import VENV_INSIDE, python_path

    env = create_environment(mathlib[0], tmp_path / "env", runner_packages=())
    workspace = tmp_path / "ws"
    workspace.mkdir()
    result = run_command(["python", "-c", "import sys; print(sys.prefix)"], workdir=workspace,
                         ro_binds=env.ro_binds(), env=env.variables(python_path(workspace)))
    assert result.returncode == 0 and result.stdout.strip() == VENV_INSIDE
    with pytest.raises(ValueError, match="exists and is not empty"):
        create_environment(mathlib[0], tmp_path / "env")


def test_workspace_is_removed_on_close_and_when_an_env_is_dropped(tasks):
    import gc

    closed, dropped = SWEEnv(tasks[0]), SWEEnv(tasks[0])
    closed.reset()
    dropped.reset()
    paths = [closed.workspace.parent, dropped.workspace.parent]
    assert all(p.is_dir() for p in paths)
    closed.close()
    del dropped
    gc.collect()
    assert not any(p.exists() for p in paths)
