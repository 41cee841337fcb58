"""The behaviour-event schema shared by training and scoring.

A canonical event frame has one row per event and these columns:

- ``user_id``, ``topic``, ``event_type``: strings (``object``, ``string`` or
  ``category`` dtype);
- ``timestamp``: ``int64`` epoch seconds, UTC;
- ``value``: ``float64``, 1.0 where the source had no value;
- ``item_id``: optional string.

Readers turn files into this frame; the feature builder and the label
builder consume it.
"""

from __future__ import annotations

USER_ID = "user_id"
TOPIC = "topic"
EVENT_TYPE = "event_type"
TIMESTAMP = "timestamp"
ITEM_ID = "item_id"
VALUE = "value"

REQUIRED_COLUMNS: tuple[str, ...] = (USER_ID, TOPIC, EVENT_TYPE, TIMESTAMP)
OPTIONAL_COLUMNS: tuple[str, ...] = (ITEM_ID, VALUE)
ALL_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

DEFAULT_VALUE = 1.0

# Event types that the model never saw in training are scored under this
# type. It is always the last entry of a bundle's vocabulary.
CATCH_ALL_EVENT_TYPE = "other"

SECONDS_PER_DAY = 86_400

# Output columns of the scorer, in order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    USER_ID,
    TOPIC,
    "interest",
    "rank",
    "as_of",
    "model_version",
)
