"""Engine errors: rejections at the sequencer's door and failures of the node itself.

Codes are stable like the domain's (STYLE.md "Rejections are values"); the domain uses
1xxx–3xxx, the engine 4xxx (ingress) and 5xxx (node state). A rejected submission never
reaches the journal and never consumes a sequence number.
"""

from __future__ import annotations

from enum import IntEnum


class EngineErrorCode(IntEnum):
    # ingress 4xxx: the submission is refused before sequencing
    MALFORMED_COMMAND = 4001
    OVERSIZED_COMMAND = 4002
    UNKNOWN_COMMAND_TYPE = 4003
    OVERLOADED = 4004
    # node 5xxx: the node cannot take commands
    NODE_CLOSED = 5001
    NODE_FAILED = 5002


class CommandRejected(Exception):
    """Raised by ``Node.submit`` when a submission is refused; nothing was journaled.

    Attributes
    ----------
    code : EngineErrorCode
    message : str
    """

    def __init__(self, code: EngineErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class NodeFailed(Exception):
    """The node stopped after an unrecoverable error (journal write failed, or ``apply``
    raised — a domain bug). Raised from a pending acknowledgement: the command's outcome
    is unknown until a restart recovers from the journal (a failed commit may still have
    reached the disk)."""


class JournalError(Exception):
    """The journal cannot be used (wrong genesis, unreadable store, …)."""


class JournalLocked(JournalError):
    """Another process holds the data directory or the PostgreSQL journal (single writer)."""


class RecoveryError(Exception):
    """Replaying a journaled command failed in a way cutting cannot fix (e.g. ``apply``
    raised on a command that applied cleanly when it was sequenced: nondeterminism)."""
