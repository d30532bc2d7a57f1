"""Sequential decision-making: CartPole-v1 (gymnasium) turned into a stream of conflicting tasks.

Task k shows the policy the true state s = (x, x_dot, theta, theta_dot) through its own fixed view,
o = signs_k * s[perm_k], plus a one-hot task identity (the task-aware, single-head setting of Continual World,
Wolczyk et al. 2021). The views are chosen so the same observed vector asks for opposite pushes in different
tasks, so fitting the current task overwrites what the shared weights did for the earlier ones.

An LQR controller on the true state is the expert; its gain solves the continuous Riccati equation of the
cart-pole linearised upright (gymnasium's constants, Q = diag(1, 1, 10, 1), R = 1) and it scores 500/500.
The policy learns each task by behaviour cloning with DART-style noise injection (Laskey et al., "DART:
Noise Injection for Robust Imitation Learning", CoRL 2017): the rollout sometimes takes a random action so
the demonstrations cover the states the learner will drift into, and every visited state is labelled with
the expert's action. Score = mean return over seeded evaluation episodes / 500.

The policy is an MLP (4 + tasks) -> width -> width -> 2 (``HIDDEN`` by default; ``width`` sets both layers).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from retain.scenario import Scenario, Task
from retain.seeding import derived_seed
from retain.errors import check
from retain.models.classifier import Labeled, mlp
from retain.models.policy import PolicyAdapter
from retain.train.loop import TrainConfig

LQR_GAIN = np.array([1.0, 2.3159, 32.1610, 8.2138])
MAX_RETURN = 500.0
# (permutation, signs) per task: the first is the plain state, the second its mirror image (every push
# reversed), the last two swap what the cart and the pole look like.
VIEWS = [((0, 1, 2, 3), (1, 1, 1, 1)),
         ((0, 1, 2, 3), (-1, -1, -1, -1)),
         ((2, 3, 0, 1), (1, 1, 1, 1)),
         ((2, 3, 0, 1), (-1, 1, -1, 1))]
HIDDEN = (64, 64)
NOISE = 0.3
EPISODE_SEEDS = {"val": 10_000, "test": 20_000}


def expert_action(state: np.ndarray) -> int:
    """Push right when the LQR force -K s is positive."""
    return int(LQR_GAIN @ state > 0)


class View:
    """How task ``index`` of ``count`` shows the state to the policy."""

    def __init__(self, index: int, count: int) -> None:
        perm, signs = VIEWS[index]
        self.perm, self.signs = np.array(perm), np.array(signs, dtype=np.float64)
        self.task_id = np.eye(count, dtype=np.float64)[index]

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return np.concatenate([self.signs * state[self.perm], self.task_id]).astype(np.float32)


def demonstrations(view: View, states: int, seed: int) -> list[Labeled]:
    """``states`` expert-labelled observations from noisy expert rollouts seeded by ``seed``."""
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    examples: list[Labeled] = []
    episode = 0
    while len(examples) < states:
        state, _ = env.reset(seed=derived_seed(seed, episode))
        episode += 1
        done = False
        while not done and len(examples) < states:
            label = expert_action(state)
            examples.append(Labeled(torch.from_numpy(view(state)), label))
            action = int(rng.integers(2)) if rng.random() < NOISE else label
            state, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    env.close()
    return examples


def mean_return(adapter: PolicyAdapter, view: View, episodes: int, first_seed: int) -> float:
    """Greedy policy's mean undiscounted return over ``episodes`` seeded episodes, run in lockstep."""
    envs = [gym.make("CartPole-v1") for _ in range(episodes)]
    states = [env.reset(seed=first_seed + i)[0] for i, env in enumerate(envs)]
    returns = np.zeros(episodes)
    alive = list(range(episodes))
    while alive:
        actions = adapter.act(np.stack([view(states[i]) for i in alive]))
        still = []
        for i, action in zip(alive, actions):
            states[i], reward, terminated, truncated, _ = envs[i].step(int(action))
            returns[i] += reward
            if not (terminated or truncated):
                still.append(i)
        alive = still
    for env in envs:
        env.close()
    return float(returns.mean())


def _task(index: int, count: int, states: int, episodes: int, split: str, seed: int) -> Task:
    view = View(index, count)
    first = EPISODE_SEEDS[split] + 100 * index
    return Task(name=f"cartpole view {index + 1}",
                train=demonstrations(view, states, seed=seed * 100 + index),
                score=lambda adapter: mean_return(adapter, view, episodes, first) / MAX_RETURN)


def hidden(width: int | None) -> tuple[int, int]:
    """The policy's hidden layers: ``HIDDEN``, or ``width`` for both."""
    if width is None:
        return HIDDEN
    check(width >= 1, f"must be >= 1, got {width}", field="width")
    return (width, width)


def cartpole_stream(split: str, train: TrainConfig, *, seed: int, states: int, episodes: int,
                    tasks: int = len(VIEWS), layers: tuple[int, ...] = HIDDEN) -> Scenario:
    """The conflicting-views stream; demonstrations depend on ``seed``, evaluation episodes on ``split`` only."""
    check(split in EPISODE_SEEDS, f"must be val or test, got {split!r}", field="split")
    check(1 <= tasks <= len(VIEWS), f"must be between 1 and {len(VIEWS)}, got {tasks}", field="tasks")
    stream = [_task(k, tasks, states, episodes, split, seed) for k in range(tasks)]
    return Scenario("control", "cartpole-views", "task-incremental", stream,
                    lambda recipe: PolicyAdapter(mlp(4 + tasks, layers, 2, recipe.seed)), train)


def scenarios(split: str = "test", *, seed: int = 0, quick: bool = False, width: int | None = None) -> list[Scenario]:
    """The control scenario with the budget the benchmark uses (``quick``: a smoke test); ``width``: both
    hidden layers' size (default ``HIDDEN``)."""
    layers = hidden(width)
    cfg = TrainConfig(epochs=3 if quick else 15, batch_size=64, lr=3e-3, grad_clip=0.0, schedule="constant")
    return [cartpole_stream(split, cfg, seed=seed, states=400 if quick else 2000, episodes=3 if quick else 10,
                            layers=layers)]
