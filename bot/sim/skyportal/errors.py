"""The two exceptions of the SkyPortal stand-in's handlers: the error answer, and a failure inside a body."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: `status` and `message` in the SkyPortal error envelope (or a bare 404 for HEAD)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Fail(Exception):
    """An exception inside a handler body, re-wrapped by the handler into its own 400 message."""
