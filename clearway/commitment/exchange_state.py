"""Committing an ``ExchangeState``: its account and instrument leaves, incrementally, and
the state root of each batch.

Mapping from the domain (accounts.py, state.py) to the leaves (leaves.py):

- account leaf of account ``i``: ``(i, owner, cash, [(instrument, size, funding_index)])``
  with ``size`` in lots, ``cash`` in micro-USDC, positions sorted and zero sizes dropped;
  every account is committed, the fee account (0) and the insurance fund (1) included, so
  that each of them can escape.
- instrument leaf of instrument ``j``: ``(j, settlement_price, funding_index,
  size_decimals)`` with ``settlement_price`` = the state's mark of ``j`` (micro-USDC per
  contract; 0 while it has none, so a position in it escapes at 0) and ``funding_index`` =
  the domain's cumulative funding index of the instrument (positions carry theirs).

Funding and conservation: the domain settles every position of a perp at each funding tick
(domain/funding_engine.py), so in a committed state every position's funding index equals
its instrument's and the escape's funding term (commitment/escape.py) is 0; the fee
account, counterparty of every payment, holds the settled balance in its cash. Σ escape
values ≤ Σ cash = the vault's holdings for the exchange; the remainder is the price terms'
flooring (a fraction of a micro-USDC per position) plus the negative equity of any
bankrupt account (which escapes 0). A state carrying unsettled funding (only one restored
from before eager settlement, until its next tick) would over-promise the funding owed to
unsettled receivers: :func:`unsettled_positions` finds such positions.

Genesis hash: the vault's ``genesis_config_hash`` (and every state root) uses
:func:`committed_genesis_hash`, i.e. ``keccak256(GenesisConfig.encode())`` — the keccak of
the same canonical MessagePack bytes whose SHA-256 is ``GenesisConfig.config_hash()``
(the domain's state hash keeps SHA-256). Keccak keeps every on-chain commitment in one
hash function the EVM computes natively.

Incremental: after a batch only the accounts its events touched are rebuilt (plus 0 and 1,
which fees and, later, liquidations credit); instruments are few and all compared.
An event type this module does not know (a newer domain) makes the batch rebuild every
account whose committed fields changed — correct, only slower.
"""

from __future__ import annotations

from collections.abc import Iterable

from eth_hash.auto import keccak

from clearway.commitment.leaves import AccountLeaf, InstrumentLeaf, PositionLeaf
from clearway.commitment.state_root import CommittedState
from clearway.domain import events as ev
from clearway.domain.genesis import FEE_ACCOUNT, INSURANCE_FUND, GenesisConfig

SYSTEM_ACCOUNTS = (FEE_ACCOUNT, INSURANCE_FUND)

# events that change no account's committed fields
_NEUTRAL_EVENTS = frozenset({
    ev.Rejected, ev.InstrumentListed, ev.PricesSet, ev.OrderAccepted, ev.OrderCancelled, ev.OrderAmended,
    ev.MarketDataSet, ev.MarginModeSet, ev.FundingTick,
})
# events that change the committed fields of the accounts they name (the fee account, the
# counterparty of every FundingPaid, is always compared)
_ACCOUNT_EVENTS = frozenset({ev.AccountCreated, ev.Deposited, ev.Withdrawn, ev.Trade, ev.FundingPaid})


def committed_genesis_hash(genesis: GenesisConfig) -> bytes:
    """``keccak256(genesis.encode())``: the genesis hash held by the vault and in every
    state root (32 bytes). See the module docstring for why keccak, not SHA-256."""
    return keccak(genesis.encode())


def account_leaf(state, account_id: int) -> AccountLeaf:
    """The committed leaf of account ``account_id`` of ``state`` (an ExchangeState).

    Raises KeyError if there is no such account; ValueError if a field does not fit the
    leaf's ABI types (cash or a size beyond int256: never for a sane state)."""
    account = state.accounts[account_id]
    positions = [PositionLeaf(i, p.size, p.funding_index) for i, p in account.positions.items() if p.size]
    return AccountLeaf(account_id, account.owner, account.cash, tuple(positions))


def instrument_leaf(state, instrument_id: int) -> InstrumentLeaf:
    """The committed leaf of instrument ``instrument_id``: its mark as settlement price
    (0 if it has none), its cumulative funding index (``state.funding_index``, 10⁻¹² USDC
    per contract; 0 for options and before the first funding tick), its size decimals.
    KeyError if not listed. With both indices committed, an escape pays each position's
    unsettled funding (commitment/escape.py)."""
    spec = state.instruments[instrument_id]
    funding = state.funding_index.get(instrument_id, 0)
    return InstrumentLeaf(instrument_id, state.marks.get(instrument_id, 0), funding, spec.size_decimals)


def unsettled_positions(state) -> list[tuple[int, int]]:
    """``(account_id, instrument_id)`` of every non-zero position whose funding index
    differs from its instrument's (sorted); empty for every state the domain produces
    after its first tick with eager settlement (module docstring)."""
    funding = state.funding_index
    return sorted((account_id, instrument)
                  for account_id, account in state.accounts.items()
                  for instrument, position in account.positions.items()
                  if position.size and position.funding_index != funding.get(instrument, 0))


def touched_accounts(events: Iterable) -> set[int] | None:
    """Accounts whose committed fields ``events`` may have changed, or None when an event
    of an unknown type appears (the caller must then compare every account)."""
    touched: set[int] = set()
    for event in events:
        t = type(event)
        if t in _NEUTRAL_EVENTS:
            continue
        if t is ev.Trade:
            touched.add(event.maker_account)
            touched.add(event.taker_account)
        elif t in _ACCOUNT_EVENTS:
            touched.add(event.account)
        else:
            return None
    return touched


def _fields(state, account_id: int) -> tuple:
    account = state.accounts[account_id]
    return (account.owner, account.cash,
            tuple(sorted((i, p.size, p.funding_index) for i, p in account.positions.items() if p.size)))


class StateCommitter:
    """The committed state of one exchange, advanced batch by batch.

    ``commit(state, touched, batch_number)`` rebuilds the leaves of the touched accounts
    (and the system accounts) and of changed instruments, and returns the new state root
    with ``batch_number`` and ``state.last_seq``. Proofs and leaves for escapes come from
    :attr:`committed` (a :class:`CommittedState`). Not thread-safe.
    """

    def __init__(self, genesis: GenesisConfig) -> None:
        self.genesis_hash = committed_genesis_hash(genesis)
        self.committed = CommittedState(self.genesis_hash)
        self._fields: dict[int, tuple] = {}
        self._instruments: dict[int, InstrumentLeaf] = {}

    def commit(self, state, touched: Iterable[int] | None, batch_number: int) -> bytes:
        """Commit ``state`` as batch ``batch_number``; return its 32-byte state root.

        ``touched`` : account ids whose fields may have changed since the last commit, or
        None to compare every account (after an unknown event, or to rebuild from scratch).
        """
        candidates = set(state.accounts) if touched is None else {a for a in touched if a in state.accounts}
        candidates.update(a for a in SYSTEM_ACCOUNTS if a in state.accounts)
        accounts = []
        for account_id in sorted(candidates):
            fields = _fields(state, account_id)
            if self._fields.get(account_id) != fields:
                self._fields[account_id] = fields
                accounts.append(account_leaf(state, account_id))
        instruments = []
        for instrument_id in sorted(state.instruments):
            leaf = instrument_leaf(state, instrument_id)
            if self._instruments.get(instrument_id) != leaf:
                self._instruments[instrument_id] = leaf
                instruments.append(leaf)
        self.committed.update(accounts, instruments)
        return self.committed.root(batch_number, state.last_seq)

    def root(self, batch_number: int, last_seq: int) -> bytes:
        """Root of the current trees for ``batch_number`` / ``last_seq``."""
        return self.committed.root(batch_number, last_seq)


def full_state_root(state, batch_number: int) -> bytes:
    """State root of ``state`` built from scratch (every account and instrument): the
    reference the incremental :class:`StateCommitter` must always equal."""
    committer = StateCommitter(state.genesis)
    return committer.commit(state, None, batch_number)
