"""The deposit watcher: L1 vault events → sequencer commands.

Each ``poll()`` reads the vault's events in blocks ``last scanned + 1 … head −
confirmations + 1`` (a block counts once ``confirmations`` blocks including it are mined;
1 = as soon as it is mined, right for the embedded chain and anvil's automine) and:

- turns every ``Deposit`` into exactly one domain ``Deposit`` command: idempotent by
  deposit id — ids at or below the state's ``last_deposit_id`` are skipped, so a restart
  (or a rescan from block 0) never credits twice; a gap in the ids stops the poll with
  ChainError DEPOSIT_REFUSED (the vault numbers deposits without gaps, so it means missing
  logs);
- records every ``ForcedWithdrawalRequested`` in the inbox and serves it: the sequencer
  gets the ``Withdraw`` built by :func:`~clearway.commitment.replay.serving_withdraw`
  (min(requested, free collateral)), and the inbox maps the request to that command's
  sequence number (0 when no command can serve it); the batcher then includes it.

The watcher talks to the sequencer only through the :class:`Sequencer` protocol
(``clearway.engine.node.Node`` satisfies it); it never imports the engine.

Known gap (until the domain has a ``ForcedWithdrawal`` command carrying the request id):
if the process dies after the serving ``Withdraw`` is journaled but before the inbox
records its sequence number, a restart serves the request again; the first withdrawal is
then paid as an ordinary withdrawal to the same owner (nothing is lost or created, the
owner receives up to twice the requested amount from their own account).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from clearway.chain.errors import ChainError, ChainErrorCode
from clearway.chain.inbox import Inbox
from clearway.chain.vault import VaultClient
from clearway.commitment.replay import serving_withdraw
from clearway.domain.commands import Command, Deposit
from clearway.domain.events import Deposited, Rejected

log = logging.getLogger("clearway.chain")

SCANNED_BLOCK = "watcher.scanned_block"


class Ticket(Protocol):
    def result(self, timeout: float | None = None) -> list: ...

    @property
    def seq(self) -> int: ...


class Sequencer(Protocol):
    """What the chain side needs from the sequencer node (``Node`` has it)."""

    def submit(self, command: Command) -> Ticket: ...

    def query(self, fn: Callable[[Any], Any]) -> Any: ...  # a Future of fn(state)


@dataclass(frozen=True, slots=True)
class WatchReport:
    """What one poll did: blocks scanned (inclusive range), deposits credited, deposits
    skipped as already credited, forced requests recorded and served."""

    from_block: int
    to_block: int
    deposits: int = 0
    skipped: int = 0
    forced: int = 0


class ChainWatcher:
    """Feeds vault events to the sequencer (module docstring).

    Parameters
    ----------
    client : VaultClient
    sequencer : Sequencer
    inbox : Inbox
        Persists the scanned block and the forced requests.
    confirmations : int
        Blocks that must include an event (≥ 1).
    start_block : int
        First block to scan on a fresh inbox (the vault's deployment block).
    max_range : int
        Blocks per ``eth_getLogs`` query.
    timeout : float
        Seconds to wait for each command's acknowledgement.
    """

    def __init__(self, client: VaultClient, sequencer: Sequencer, inbox: Inbox, confirmations: int = 1,
                 start_block: int = 0, max_range: int = 2_000, timeout: float = 60.0) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        self.client = client
        self.sequencer = sequencer
        self.inbox = inbox
        self.confirmations = confirmations
        self.start_block = start_block
        self.max_range = max_range
        self.timeout = timeout

    def poll(self) -> WatchReport:
        """Scan the newly confirmed blocks once (module docstring). Raises ChainError on a
        chain failure or a deposit id gap; what was done before stays done."""
        head = self.client.chain.block_number()
        safe = head - self.confirmations + 1
        first = max(self.inbox.get_meta(SCANNED_BLOCK, self.start_block - 1) + 1, self.start_block)
        deposits = skipped = forced = 0
        start = first
        while start <= safe:
            end = min(safe, start + self.max_range - 1)
            d, s, f = self._scan(start, end)
            deposits, skipped, forced = deposits + d, skipped + s, forced + f
            self.inbox.set_meta(SCANNED_BLOCK, end)
            start = end + 1
        self._serve_forced()
        return WatchReport(first, safe, deposits, skipped, forced)

    def _scan(self, start: int, end: int) -> tuple[int, int, int]:
        deposits = skipped = 0
        events = self.client.deposits(start, end)
        if events:
            last = self.sequencer.query(lambda state: state.last_deposit_id).result(self.timeout)
            for event in events:
                if event.deposit_id <= last:
                    skipped += 1
                    continue
                if event.deposit_id != last + 1:
                    raise ChainError(ChainErrorCode.DEPOSIT_REFUSED,
                                     f"deposit {event.deposit_id} follows {last}: missing deposit logs")
                events_out = self.sequencer.submit(
                    Deposit(0, 0, event.owner, event.amount, event.deposit_id)).result(self.timeout)
                if not any(isinstance(e, Deposited) for e in events_out):
                    reason = next((e.message for e in events_out if isinstance(e, Rejected)), "no Deposited event")
                    raise ChainError(ChainErrorCode.DEPOSIT_REFUSED, f"deposit {event.deposit_id}: {reason}")
                last = event.deposit_id
                deposits += 1
        forced = sum(self.inbox.add_forced(request) for request, _ in self.client.forced_requests(start, end))
        return deposits, skipped, forced

    def _serve_forced(self) -> None:
        for record in self.inbox.forced(unserved_only=True):
            if record.seq is not None:
                continue
            request = record.request
            command = self.sequencer.query(lambda state: serving_withdraw(state, request)).result(self.timeout)
            seq = 0
            if command is not None:
                ticket = self.sequencer.submit(command)
                ticket.result(self.timeout)
                seq = ticket.seq
            self.inbox.set_forced_seq(request.request_id, seq)
            log.info("forced withdrawal %d served by seq %d", request.request_id, seq)
