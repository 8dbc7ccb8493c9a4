"""The per-batch checks that are not the replay itself: L1 deposits (in order, in time, as
the vault recorded them), order authorisation (EIP-712 signatures and nonces), and the
accounts a root or effects mismatch concerns.

Each check returns :class:`~clearway.verifier.alarms.Finding` values; verifier.py decides
what to do with them. Price commands have their own module (prices.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from clearway.chain.vault import DepositEvent
from clearway.commitment import Withdrawal
from clearway.commitment.authorisation import SIGNABLE_COMMANDS, AuthKind, recover_signer
from clearway.commitment.batch import Batch
from clearway.domain.commands import Deposit
from clearway.verifier.alarms import AffectedAccount, AlarmCode, Finding


def affected(state, account_ids: Iterable[int]) -> tuple[AffectedAccount, ...]:
    """``AffectedAccount`` of each id (owner from ``state`` where the account exists)."""
    out = []
    for account_id in sorted(set(account_ids)):
        account = state.accounts.get(account_id)
        out.append(AffectedAccount(account_id, account.owner if account is not None else None))
    return tuple(out)


def owner_account(state, owner: str) -> AffectedAccount:
    """The account of ``owner`` (its index if it has one)."""
    owner = owner.lower()
    return AffectedAccount(state.owners.get(owner), owner)


# ============================================================================ deposits


def check_deposits(batch: Batch, vault_deposits: Mapping[int, DepositEvent], last_included: int,
                   submitted_block: int, window_blocks: int | None, state) -> tuple[list[Finding], int]:
    """Check the batch's ``Deposit`` commands against the vault's ``Deposit`` events.

    - DEPOSIT_MISMATCH: a command whose id the vault never emitted, or whose owner or
      amount differ from the event's, or an id already included;
    - DEPOSIT_SKIPPED: a command whose id is beyond the next one (names the skipped id and
      its owner);
    - DEPOSIT_OVERDUE (in time): after the batch, a deposit mined at least
      ``window_blocks`` blocks before the batch's submission block is still not included
      (None disables the rule).

    ``last_included`` is the state's last deposit id before the batch; ``state`` (before
    the batch) names the accounts. Returns (findings, deposit commands checked).
    """
    findings: list[Finding] = []
    expected = last_included + 1
    count = 0
    for command in batch.commands:
        if type(command) is not Deposit:
            continue
        count += 1
        event = vault_deposits.get(command.deposit_id)
        who = (owner_account(state, command.owner),)
        if event is None:
            findings.append(Finding(AlarmCode.DEPOSIT_MISMATCH, f"the vault has no deposit {command.deposit_id}",
                                    command.seq, who))
        elif (event.owner, event.amount) != (command.owner, command.amount):
            findings.append(Finding(AlarmCode.DEPOSIT_MISMATCH,
                                    f"deposit {command.deposit_id} is {event.amount} for {event.owner} on L1, "
                                    f"{command.amount} for {command.owner} in the batch", command.seq,
                                    (owner_account(state, event.owner), *who)))
        elif command.deposit_id < expected:
            findings.append(Finding(AlarmCode.DEPOSIT_MISMATCH, f"deposit {command.deposit_id} is already included",
                                    command.seq, who))
        elif command.deposit_id > expected:
            skipped = vault_deposits.get(expected)
            victim = owner_account(state, skipped.owner) if skipped is not None else AffectedAccount(None)
            findings.append(Finding(AlarmCode.DEPOSIT_SKIPPED,
                                    f"deposit {command.deposit_id} is included but deposit {expected} is skipped",
                                    command.seq, (victim,)))
            expected = command.deposit_id + 1
        else:
            expected += 1
    if window_blocks is not None:
        pending = vault_deposits.get(expected)
        if pending is not None and submitted_block - pending.block_number >= window_blocks:
            findings.append(Finding(AlarmCode.DEPOSIT_OVERDUE,
                                    f"deposit {expected} (block {pending.block_number}) is not included "
                                    f"{submitted_block - pending.block_number} blocks later (window {window_blocks})",
                                    None, (owner_account(state, pending.owner),)))
    return findings, count


# ============================================================================ authorisation


@dataclass
class AuthCheck:
    """Outcome of :func:`check_authorisations`."""

    findings: list[Finding] = field(default_factory=list)
    signed: int = 0
    operator_attested: int = 0
    nonces: list[tuple[str, int]] = field(default_factory=list)


def check_authorisations(batch: Batch, state, domain_separator: bytes,
                         nonce_used: Callable[[str, int], bool]) -> AuthCheck:
    """Every SIGNED account command must recover to its account's owner (EIP-712,
    commitment/authorisation.py), each (owner, nonce) once ever; OPERATOR ones are counted.

    Signable: orders (plain ``Order`` or, with a trigger, display size or expiry,
    ``AdvancedOrder``), TWAPs, cancels, batch cancels, cancel-alls, amends, withdrawals.
    Their typed messages cover every field the owner chose, so a sequencer that changes a
    trigger, display size, expiry, TWAP parameter or cancelled id makes a BAD_SIGNATURE.

    ``state`` is the state after the batch (owners never change, and accounts the batch
    creates exist there); ``nonce_used`` says whether an earlier batch used a pair.
    BAD_SIGNATURE / NONCE_REUSED name the command and its account.
    """
    result = AuthCheck()
    seen: set[tuple[str, int]] = set()
    for command, auth in zip(batch.commands, batch.authorisations):
        if type(command) not in SIGNABLE_COMMANDS:
            continue
        if auth.kind != AuthKind.SIGNED:
            result.operator_attested += 1
            continue
        result.signed += 1
        account = state.accounts.get(command.account)
        who = affected(state, [command.account])
        if account is None:
            result.findings.append(Finding(AlarmCode.BAD_SIGNATURE, f"signed {type(command).__name__} for account "
                                           f"{command.account}, which does not exist", command.seq, who))
            continue
        signer = recover_signer(domain_separator, command, account.owner, auth)
        if signer is None or signer.lower() != account.owner:
            result.findings.append(Finding(AlarmCode.BAD_SIGNATURE, f"{type(command).__name__} signed by "
                                           f"{signer.lower() if signer else 'no valid key'}, not by the owner "
                                           f"{account.owner}", command.seq, who))
            continue
        key = (account.owner, auth.nonce)
        if key in seen or nonce_used(*key):
            result.findings.append(Finding(AlarmCode.NONCE_REUSED, f"nonce {auth.nonce} of {account.owner} was used "
                                           "before", command.seq, who))
            continue
        seen.add(key)
        result.nonces.append(key)
    return result


# ============================================================================ mismatches


def effects_difference(state, posted_withdrawals: Sequence[tuple[str, int]],
                       replayed_withdrawals: Sequence[Withdrawal],
                       posted_forced: Sequence[tuple[int, int]], replayed_forced: Sequence,
                       requests: Mapping[int, object]) -> tuple[AffectedAccount, ...]:
    """Accounts whose L1 payments differ between what the sequencer posted and the replay."""
    posted = {(o.lower(), a) for o, a in posted_withdrawals}
    replayed = {(w.owner.lower(), w.amount) for w in replayed_withdrawals}
    owners = {o for o, _ in posted ^ replayed}
    forced_posted = {(int(r), int(a)) for r, a in posted_forced}
    forced_replayed = {(f.request_id, f.amount) for f in replayed_forced}
    for request_id, _ in forced_posted ^ forced_replayed:
        request = requests.get(request_id)
        if request is not None:
            owners.add(request.owner.lower())
    return tuple(owner_account(state, o) for o in sorted(owners))
