"""SWE-RL: tasks mined from git histories, environments without history or network, tools as JSON
actions, test rewards with an efficiency bonus (see README "SWE-RL")."""

from iquest_core.swe.env import StepResult, SWEEnv
from iquest_core.swe.environment import RepoEnvironment, create_environment
from iquest_core.swe.mine import MineReport, mine_repository
from iquest_core.swe.tasks import Task, load_tasks

__all__ = ["MineReport", "RepoEnvironment", "SWEEnv", "StepResult", "Task", "create_environment", "load_tasks",
           "mine_repository"]
