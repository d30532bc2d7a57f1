"""The adapter for a discrete-action policy network: behaviour cloning treats (observation, expert action)
as a labelled example, so the policy is a classifier over actions that can also act in an environment.
"""

from __future__ import annotations

import numpy as np
import torch

from retain.models.classifier import ClassifierAdapter


class PolicyAdapter(ClassifierAdapter):
    """A classifier over actions (``Labeled(observation, action)`` examples) that picks greedy actions."""

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """Greedy actions for a batch of observations ``[K, D]``."""
        was_training = self.model.training
        self.model.eval()
        obs = torch.as_tensor(np.asarray(observations), dtype=torch.float32, device=self._device())
        actions = self.model(obs).argmax(dim=-1).cpu().numpy()
        self.model.train(was_training)
        return actions
