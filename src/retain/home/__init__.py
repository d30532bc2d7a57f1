"""Workflows over one evolving model's home: init, learn into it, reproduce a version.

They sit above the public API (:mod:`retain.api`, :func:`retain.run.run`) and below the CLI; the storage they
write through is :mod:`retain.ledger`, which knows nothing of training.
"""

from retain.home.workflows import init_home_from_model, is_home, learn_in_home, reproduce, score_suite

__all__ = ["init_home_from_model", "is_home", "learn_in_home", "reproduce", "score_suite"]
