"""The sequencer: sequence numbers and timestamps, the journal with group commit,
snapshots, recovery and event fan-out (DESIGN.md). Start with ``node.Node``."""

from clearway.engine.errors import (
    CommandRejected, EngineErrorCode, JournalError, JournalLocked, NodeFailed, RecoveryError,
)
from clearway.engine.delivery import Published, Subscription, Ticket, Tickets
from clearway.engine.node import Node
from clearway.engine.recovery import RecoveryReport

__all__ = [
    "CommandRejected", "EngineErrorCode", "JournalError", "JournalLocked", "Node", "NodeFailed",
    "Published", "RecoveryError", "RecoveryReport", "Subscription", "Ticket", "Tickets",
]
