"""Exceptions raised by the scoring stage.

``InterestDecayError`` is the base. ``InputContractError`` means a behaviour
file breaks the input contract: retrying cannot help, so the cloud function
reports it and does not retry. ``BundleError`` means the model bundle is
missing, corrupt or does not match this code.
"""

from __future__ import annotations


class InterestDecayError(Exception):
    """Base class of every error this project raises on purpose."""


class InputContractError(InterestDecayError):
    """A behaviour file or frame breaks the input contract.

    ``source`` names the file or object, ``row`` is the 1-based data row
    (or line for JSON Lines) where the first problem was found, if any.
    """

    def __init__(
        self, message: str, *, source: str | None = None, row: int | None = None
    ):
        super().__init__(message)
        self.source = source
        self.row = row


class BundleError(InterestDecayError):
    """The model bundle is missing, corrupt or built for other feature code."""
