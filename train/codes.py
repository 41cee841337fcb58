"""Integer codes of users and (user, topic) pairs, for sums with ``bincount``.

Grouping with pandas on string columns costs more than building the
features, so label and baseline sums factorize once and use
``numpy.bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SharedCodes:
    """Codes of events and of candidate keys in one numbering.

    A key whose user or pair has no event gets the last code, which no
    event has, so sums over events are 0 for it.
    """

    event_users: np.ndarray
    event_pairs: np.ndarray
    key_users: np.ndarray
    key_pairs: np.ndarray
    n_users: int
    n_pairs: int


def shared_codes(
    event_users: pd.Series,
    event_topics: pd.Series,
    key_users: pd.Series,
    key_topics: pd.Series,
) -> SharedCodes:
    """Return user and pair codes shared by events and keys.

    Keys without events get the codes ``n_users - 1`` and ``n_pairs - 1``,
    which no event has.
    """
    users, user_uniques = pd.factorize(event_users)
    topics, topic_uniques = pd.factorize(event_topics)
    pairs, pair_uniques = pd.factorize(
        users.astype(np.int64) * len(topic_uniques) + topics
    )
    key_user = pd.Index(user_uniques).get_indexer(key_users)
    key_topic = pd.Index(topic_uniques).get_indexer(key_topics)
    key_pair = pd.Index(pair_uniques).get_indexer(
        key_user.astype(np.int64) * len(topic_uniques) + key_topic
    )
    known = (key_user >= 0) & (key_topic >= 0)
    key_pair[~known] = -1
    # The extra last code collects keys that no event matches.
    key_user[key_user < 0] = len(user_uniques)
    key_pair[key_pair < 0] = len(pair_uniques)
    return SharedCodes(
        event_users=users,
        event_pairs=pairs,
        key_users=key_user,
        key_pairs=key_pair,
        n_users=len(user_uniques) + 1,
        n_pairs=len(pair_uniques) + 1,
    )
