"""Workflows over one evolving model's home: init, learn into it, reproduce a version, edit its suite.

They sit above the public API (:mod:`retain.api`, :func:`retain.run.run`) and below the CLI; the storage they
write through is :mod:`retain.ledger`, which knows nothing of training. The protection state a home versions
with each champion is :mod:`retain.home.protection`; the user's suite files, :mod:`retain.home.suite_files`.
"""

from retain.home.workflows import (add_to_suite, init_home_from_model, is_home, learn_in_home, list_suite,
                                   remove_from_suite, reproduce, score_suite)

__all__ = ["add_to_suite", "init_home_from_model", "is_home", "learn_in_home", "list_suite", "remove_from_suite",
           "reproduce", "score_suite"]
