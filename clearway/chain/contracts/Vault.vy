# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Clearway vault
@notice Holds the users' stablecoin. Releases it only through a finalised state root
        (withdrawals and served forced withdrawals listed in a batch) or, once frozen,
        through the escape hatch (Merkle proof of an account against the last finalised
        root) and refunds of deposits no finalised batch included.

        Lifecycle of a batch n:
          1. submit_batch(n, ...) by the sequencer: records the new root, the data hash,
             and the EIP-712 digest the verifiers must sign;
          2. finalise_batch(n, signatures) by anyone: k of the n configured verifiers must
             have signed Attestation(n, prev_root, new_root, data_hash, effects_hash);
             the batch's withdrawals and served forced withdrawals become claimable.
        Batches are submitted and finalised strictly in order.

        Liveness: request_forced_withdrawal(amount) must be served by a finalised batch
        within FORCED_ACTION_DEADLINE seconds; otherwise anyone may freeze(request_id).
        Frozen: no batch, no finalisation, no deposit, no forced request; open_escape,
        post_instrument, escape and refund_deposit become available; withdraw() of amounts
        already claimable keeps working.

        Formulas (leaves, tree, state root, escape value, effects hash) are specified in
        clearway/commitment/ and must stay identical here.
"""

from ethereum.ercs import IERC20

# ------------------------------------------------------------------------------ limits

TREE_DEPTH: constant(uint256) = 32
MAX_VERIFIERS: constant(uint256) = 32
MAX_BATCH_DATA: constant(uint256) = 65536
MAX_WITHDRAWALS_PER_BATCH: constant(uint256) = 64
MAX_FORCED_PER_BATCH: constant(uint256) = 32
MAX_POSITIONS: constant(uint256) = 64
MAX_SIZE_DECIMALS: constant(uint256) = 30
FUNDING_INDEX_SCALE: constant(int256) = 10 ** 6

# withdrawals are stored as (owner << 96 | amount): amounts must stay below 2**96
AMOUNT_LIMIT: constant(uint256) = 2 ** 96
# instrument values are stored biased in 120-bit fields: |value| must stay below 2**119
PACKED_BIAS: constant(int256) = 2 ** 119
MASK_120: constant(uint256) = 2 ** 120 - 1
MASK_64: constant(uint256) = 2 ** 64 - 1
MASK_32: constant(uint256) = 2 ** 32 - 1

SECP256K1N_HALF: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168  # (secp256k1 n) // 2

EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ATTESTATION_TYPEHASH: constant(bytes32) = keccak256(
    "Attestation(uint64 batchNumber,bytes32 prevRoot,bytes32 newRoot,bytes32 dataHash,bytes32 effectsHash)"
)
EIP712_NAME_HASH: constant(bytes32) = keccak256("Clearway Vault")
EIP712_VERSION_HASH: constant(bytes32) = keccak256("1")

# ------------------------------------------------------------------------------ types

struct Withdrawal:
    owner: address
    amount: uint256

struct ForcedWithdrawalServed:
    request_id: uint256
    amount: uint256

struct Signature:
    v: uint8
    r: bytes32
    s: bytes32

struct Position:
    instrument_id: uint32
    size: int256
    funding_index: int256

struct ForcedRequest:
    owner: address
    amount: uint256
    deadline: uint256
    served_in_batch: uint64
    paid: uint256

# ------------------------------------------------------------------------------ events

event Deposit:
    deposit_id: indexed(uint256)
    owner: indexed(address)
    amount: uint256
    depositor: address

event BatchSubmitted:
    batch_number: indexed(uint64)
    prev_root: bytes32
    new_root: bytes32
    data_hash: bytes32
    effects_hash: bytes32
    last_deposit_id: uint256

event BatchFinalised:
    batch_number: indexed(uint64)
    state_root: bytes32
    signer_bitmap: uint256

event Withdrawn:
    owner: indexed(address)
    amount: uint256

event ForcedWithdrawalRequested:
    request_id: indexed(uint256)
    owner: indexed(address)
    amount: uint256
    deadline: uint256

event Frozen:
    request_id: indexed(uint256)
    finalised_batch: uint64
    state_root: bytes32

event EscapeOpened:
    accounts_root: bytes32
    instruments_root: bytes32
    escape_pool: uint256

event InstrumentPosted:
    instrument_id: indexed(uint32)
    settlement_price: int256
    funding_index: int256
    size_decimals: uint8

event Escaped:
    account_index: indexed(uint32)
    owner: indexed(address)
    amount: uint256

event DepositRefunded:
    deposit_id: indexed(uint256)
    depositor: indexed(address)
    amount: uint256

# ------------------------------------------------------------------------------ configuration

token: public(immutable(IERC20))
sequencer: public(immutable(address))
threshold: public(immutable(uint256))
forced_action_deadline: public(immutable(uint256))
genesis_config_hash: public(immutable(bytes32))
domain_separator: public(immutable(bytes32))
ZERO_HASHES: immutable(bytes32[TREE_DEPTH])

verifiers: public(DynArray[address, MAX_VERIFIERS])
# 1-based position of a verifier in `verifiers`; 0 for anyone else
verifier_slot: public(HashMap[address, uint256])

# ------------------------------------------------------------------------------ batches

batch_count: public(uint64)  # last submitted batch number
finalised_count: public(uint64)  # last finalised batch number
batch_root: public(HashMap[uint64, bytes32])  # [0] is the genesis root
batch_digest: public(HashMap[uint64, bytes32])  # EIP-712 digest verifiers sign
# last_deposit_id | withdrawal count << 64 | forced count << 96
batch_meta: HashMap[uint64, uint256]
pending_withdrawals: HashMap[uint64, HashMap[uint256, uint256]]  # owner << 96 | amount
pending_forced: HashMap[uint64, HashMap[uint256, uint256]]  # request ids

# ------------------------------------------------------------------------------ money

deposit_count: public(uint256)  # last deposit id (ids start at 1)
deposit_depositor: public(HashMap[uint256, address])
deposit_cumulative: public(HashMap[uint256, uint256])  # sum of amounts of ids 1..id
deposit_refunded: public(HashMap[uint256, bool])
finalised_last_deposit_id: public(uint256)

claimable: public(HashMap[address, uint256])
total_claimable: public(uint256)

forced_request_count: public(uint256)
forced_requests: public(HashMap[uint256, ForcedRequest])

# ------------------------------------------------------------------------------ freeze and escape

frozen: public(bool)
frozen_at: public(uint256)
escape_batch: public(uint64)  # finalised batch whose root the escape uses
escape_state_root: public(bytes32)
accounts_root: public(bytes32)  # set by open_escape
instruments_root: public(bytes32)  # set by open_escape
escape_pool: public(uint256)  # what escapes may still pay in total
refund_reserve: public(uint256)  # what refunds may still pay in total
instrument_packed: HashMap[uint32, uint256]
escaped_bits: HashMap[uint256, uint256]  # bit (index & 255) of word (index >> 8)


@deploy
def __init__(
    token_: IERC20,
    sequencer_: address,
    verifiers_: DynArray[address, MAX_VERIFIERS],
    threshold_: uint256,
    forced_action_deadline_: uint256,
    genesis_config_hash_: bytes32,
):
    """
    @param token_ the stablecoin held (6 decimals; amounts everywhere are its units)
    @param sequencer_ the only address allowed to submit batches
    @param verifiers_ verifier signing addresses (1..32, distinct, non-zero)
    @param threshold_ k: distinct verifier signatures needed to finalise (1 <= k <= n)
    @param forced_action_deadline_ seconds a forced withdrawal may stay unserved
    @param genesis_config_hash_ hash of the genesis configuration, part of every root
    """
    assert token_.address != empty(address), "token is the zero address"
    assert sequencer_ != empty(address), "sequencer is the zero address"
    assert len(verifiers_) > 0, "no verifiers"
    assert threshold_ >= 1 and threshold_ <= len(verifiers_), "threshold out of range"
    assert forced_action_deadline_ > 0, "forced_action_deadline is zero"
    position: uint256 = 0
    for verifier: address in verifiers_:
        assert verifier != empty(address), "verifier is the zero address"
        assert self.verifier_slot[verifier] == 0, "duplicate verifier"
        position += 1
        self.verifier_slot[verifier] = position
    self.verifiers = verifiers_

    token = token_
    sequencer = sequencer_
    threshold = threshold_
    forced_action_deadline = forced_action_deadline_
    genesis_config_hash = genesis_config_hash_
    domain_separator = keccak256(
        abi_encode(EIP712_DOMAIN_TYPEHASH, EIP712_NAME_HASH, EIP712_VERSION_HASH, chain.id, self)
    )

    zero: bytes32[TREE_DEPTH] = empty(bytes32[TREE_DEPTH])
    node: bytes32 = empty(bytes32)
    for level: uint256 in range(TREE_DEPTH):
        zero[level] = node
        node = keccak256(concat(node, node))
    ZERO_HASHES = zero
    # genesis: both trees empty (root `node`), batch 0, sequence 0
    self.batch_root[0] = keccak256(
        abi_encode(node, node, convert(0, uint64), convert(0, uint64), genesis_config_hash_)
    )


# ============================================================================== views


@external
@view
def latest_root() -> bytes32:
    """@notice Root of the last submitted batch (genesis root before any batch)."""
    return self.batch_root[self.batch_count]


@external
@view
def finalised_root() -> bytes32:
    """@notice Root of the last finalised batch (genesis root before any)."""
    return self.batch_root[self.finalised_count]


@external
@view
def batch_last_deposit_id(batch_number: uint64) -> uint256:
    """@notice Last deposit id included by batch `batch_number` (0 for none so far)."""
    return self.batch_meta[batch_number] & MASK_64


@external
@view
def verifier_count() -> uint256:
    return len(self.verifiers)


@external
@view
def deposit_amount(deposit_id: uint256) -> uint256:
    assert deposit_id >= 1 and deposit_id <= self.deposit_count, "unknown deposit"
    return self.deposit_cumulative[deposit_id] - self.deposit_cumulative[deposit_id - 1]


@external
@view
def escape_open() -> bool:
    return self.accounts_root != empty(bytes32)


@external
@view
def has_escaped(account_index: uint32) -> bool:
    index: uint256 = convert(account_index, uint256)
    return (self.escaped_bits[index >> 8] >> (index & 255)) & 1 == 1


@external
@view
def instrument(instrument_id: uint32) -> (bool, int256, int256, uint8):
    """@notice (posted, settlement_price, funding_index, size_decimals) after post_instrument."""
    packed: uint256 = self.instrument_packed[instrument_id]
    if packed == 0:
        return False, 0, 0, 0
    return (
        True,
        convert(packed & MASK_120, int256) - PACKED_BIAS,
        convert((packed >> 120) & MASK_120, int256) - PACKED_BIAS,
        convert((packed >> 240) & 255, uint8),
    )


@external
@view
def escape_value(cash: int256, positions: DynArray[Position, MAX_POSITIONS]) -> uint256:
    """
    @notice Escape value of an account with these leaf fields, using posted instruments.
            No proof is checked: this is what `escape` would pay for a proven leaf.
    """
    return self._escape_value(cash, positions)


@external
@pure
def account_leaf(
    account_index: uint32,
    owner: address,
    cash: int256,
    positions: DynArray[Position, MAX_POSITIONS],
) -> bytes32:
    """@notice keccak256(abi_encode(account_index, owner, cash, positions))."""
    return keccak256(abi_encode(account_index, owner, cash, positions))


@external
@view
def compute_root(
    leaf: bytes32, index: uint32, proof_bitmap: uint32, proof: DynArray[bytes32, TREE_DEPTH]
) -> bytes32:
    """@notice Root implied by a compact proof (empty bytes32 if malformed)."""
    return self._compute_root(leaf, index, proof_bitmap, proof)


# ============================================================================== deposits


@external
@nonreentrant
def deposit(amount: uint256, owner: address = msg.sender) -> uint256:
    """
    @notice Move `amount` stablecoin units from the caller into the vault, credited to the
            account of `owner` (default: the caller) once a batch includes it.
            The caller must have approved the vault. Returns the deposit id.
    """
    assert not self.frozen, "vault is frozen"
    assert amount > 0, "amount is zero"
    assert owner != empty(address), "owner is the zero address"
    deposit_id: uint256 = self.deposit_count + 1
    self.deposit_count = deposit_id
    self.deposit_depositor[deposit_id] = msg.sender
    self.deposit_cumulative[deposit_id] = self.deposit_cumulative[deposit_id - 1] + amount
    log Deposit(deposit_id=deposit_id, owner=owner, amount=amount, depositor=msg.sender)
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "token transfer failed"
    return deposit_id


# ============================================================================== batches


@external
def submit_batch(
    batch_number: uint64,
    prev_root: bytes32,
    new_root: bytes32,
    data_hash: bytes32,
    last_deposit_id: uint256,
    withdrawals: DynArray[Withdrawal, MAX_WITHDRAWALS_PER_BATCH],
    forced_served: DynArray[ForcedWithdrawalServed, MAX_FORCED_PER_BATCH],
    data: Bytes[MAX_BATCH_DATA],
):
    """
    @notice Record batch `batch_number` (sequencer only). It awaits finalisation.
    @param batch_number exactly batch_count + 1
    @param prev_root exactly the latest submitted root (genesis root for batch 1)
    @param new_root the state root after the batch
    @param data_hash keccak256(data), checked
    @param last_deposit_id the batch includes deposits up to this id, in id order,
           continuing from the previous batch's; may equal it (no new deposits)
    @param withdrawals (owner, amount) pairs paid when the batch is finalised
    @param forced_served (request_id, amount) forced withdrawals served by the batch,
           0 <= amount <= requested; each request is served once
    @param data the batch data (commands), kept in calldata for anyone to replay
    """
    assert msg.sender == sequencer, "only the sequencer may submit batches"
    assert not self.frozen, "vault is frozen"
    previous: uint64 = self.batch_count
    assert batch_number == previous + 1, "batch number is not the next one"
    assert prev_root == self.batch_root[previous], "prev_root is not the latest submitted root"
    assert new_root != empty(bytes32), "new_root is empty"
    assert keccak256(data) == data_hash, "data_hash does not match the batch data"
    assert last_deposit_id >= self.batch_meta[previous] & MASK_64, "last_deposit_id goes backwards"
    assert last_deposit_id <= self.deposit_count, "last_deposit_id is beyond the last deposit"

    position: uint256 = 0
    for withdrawal: Withdrawal in withdrawals:
        assert withdrawal.owner != empty(address), "withdrawal to the zero address"
        assert withdrawal.amount > 0 and withdrawal.amount < AMOUNT_LIMIT, "withdrawal amount out of range"
        self.pending_withdrawals[batch_number][position] = (convert(withdrawal.owner, uint256) << 96) | withdrawal.amount
        position += 1

    position = 0
    for served: ForcedWithdrawalServed in forced_served:
        request_id: uint256 = served.request_id
        assert request_id >= 1 and request_id <= self.forced_request_count, "unknown forced-withdrawal request"
        assert self.forced_requests[request_id].served_in_batch == 0, "forced-withdrawal request already served"
        assert served.amount <= self.forced_requests[request_id].amount, "served amount exceeds the request"
        self.forced_requests[request_id].served_in_batch = batch_number
        self.forced_requests[request_id].paid = served.amount
        self.pending_forced[batch_number][position] = request_id
        position += 1

    effects_hash: bytes32 = keccak256(abi_encode(last_deposit_id, withdrawals, forced_served))
    struct_hash: bytes32 = keccak256(
        abi_encode(ATTESTATION_TYPEHASH, batch_number, prev_root, new_root, data_hash, effects_hash)
    )
    self.batch_count = batch_number
    self.batch_root[batch_number] = new_root
    self.batch_digest[batch_number] = keccak256(concat(x"1901", domain_separator, struct_hash))
    self.batch_meta[batch_number] = last_deposit_id | (len(withdrawals) << 64) | (len(forced_served) << 96)
    log BatchSubmitted(
        batch_number=batch_number,
        prev_root=prev_root,
        new_root=new_root,
        data_hash=data_hash,
        effects_hash=effects_hash,
        last_deposit_id=last_deposit_id,
    )


@external
def finalise_batch(batch_number: uint64, signatures: DynArray[Signature, MAX_VERIFIERS]):
    """
    @notice Finalise the next batch with verifier signatures of its attestation (anyone).
            A signature counts when it is a canonical (low-s) signature of this batch's
            digest by a configured verifier not already counted; others are ignored.
            Reverts unless at least `threshold` signatures count.
    """
    assert not self.frozen, "vault is frozen"
    assert batch_number == self.finalised_count + 1, "batch is not the next to finalise"
    assert batch_number <= self.batch_count, "batch is not submitted"
    digest: bytes32 = self.batch_digest[batch_number]

    seen: uint256 = 0
    counted: uint256 = 0
    for signature: Signature in signatures:
        if convert(signature.s, uint256) > SECP256K1N_HALF:
            continue
        if signature.v != 27 and signature.v != 28:
            continue
        signer: address = ecrecover(digest, signature.v, signature.r, signature.s)
        if signer == empty(address):
            continue
        slot: uint256 = self.verifier_slot[signer]
        if slot == 0:
            continue
        bit: uint256 = 1 << (slot - 1)
        if seen & bit != 0:
            continue
        seen |= bit
        counted += 1
    assert counted >= threshold, "not enough valid verifier attestations"

    meta: uint256 = self.batch_meta[batch_number]
    credited: uint256 = 0
    for position: uint256 in range((meta >> 64) & MASK_32, bound=MAX_WITHDRAWALS_PER_BATCH):
        packed: uint256 = self.pending_withdrawals[batch_number][position]
        self.pending_withdrawals[batch_number][position] = 0
        amount: uint256 = packed & (AMOUNT_LIMIT - 1)
        owner: address = convert(packed >> 96, address)
        self.claimable[owner] += amount
        credited += amount
    for position: uint256 in range((meta >> 96) & MASK_32, bound=MAX_FORCED_PER_BATCH):
        request_id: uint256 = self.pending_forced[batch_number][position]
        self.pending_forced[batch_number][position] = 0
        paid: uint256 = self.forced_requests[request_id].paid
        if paid > 0:
            self.claimable[self.forced_requests[request_id].owner] += paid
            credited += paid
    self.total_claimable += credited
    self.finalised_count = batch_number
    self.finalised_last_deposit_id = meta & MASK_64
    log BatchFinalised(
        batch_number=batch_number, state_root=self.batch_root[batch_number], signer_bitmap=seen
    )


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @notice Pay the caller everything finalised batches made claimable for it.
            Works while frozen too. Returns the amount paid.
    """
    amount: uint256 = self.claimable[msg.sender]
    assert amount > 0, "nothing to withdraw"
    self.claimable[msg.sender] = 0
    self.total_claimable -= amount
    log Withdrawn(owner=msg.sender, amount=amount)
    assert extcall token.transfer(msg.sender, amount, default_return_value=True), "token transfer failed"
    return amount


# ============================================================================== liveness


@external
def request_forced_withdrawal(amount: uint256) -> uint256:
    """
    @notice Ask that `amount` be withdrawn from the caller's account. A batch must serve
            the request (pay it, or part of it, or 0 if the account cannot) and be
            finalised within `forced_action_deadline` seconds, or anyone may freeze.
            Returns the request id.
    """
    assert not self.frozen, "vault is frozen"
    assert amount > 0, "amount is zero"
    assert amount < AMOUNT_LIMIT, "amount too large"
    request_id: uint256 = self.forced_request_count + 1
    self.forced_request_count = request_id
    deadline: uint256 = block.timestamp + forced_action_deadline
    self.forced_requests[request_id] = ForcedRequest(
        owner=msg.sender, amount=amount, deadline=deadline, served_in_batch=0, paid=0
    )
    log ForcedWithdrawalRequested(
        request_id=request_id, owner=msg.sender, amount=amount, deadline=deadline
    )
    return request_id


@external
def freeze(request_id: uint256):
    """
    @notice Freeze the vault (anyone) because forced request `request_id` is overdue:
            its deadline has passed and no finalised batch served it.
    """
    assert not self.frozen, "vault is already frozen"
    assert request_id >= 1 and request_id <= self.forced_request_count, "unknown forced-withdrawal request"
    assert block.timestamp > self.forced_requests[request_id].deadline, "forced-withdrawal request is not overdue"
    served_in: uint64 = self.forced_requests[request_id].served_in_batch
    finalised: uint64 = self.finalised_count
    assert served_in == 0 or served_in > finalised, "forced-withdrawal request was served"

    self.frozen = True
    self.frozen_at = block.timestamp
    self.escape_batch = finalised
    self.escape_state_root = self.batch_root[finalised]
    last_included: uint256 = self.finalised_last_deposit_id
    self.refund_reserve = self.deposit_cumulative[self.deposit_count] - self.deposit_cumulative[last_included]
    log Frozen(request_id=request_id, finalised_batch=finalised, state_root=self.batch_root[finalised])


# ============================================================================== escape hatch


@external
def open_escape(accounts_root: bytes32, instruments_root: bytes32, last_sequence: uint64):
    """
    @notice Reveal the two tree roots behind the last finalised state root (anyone,
            once, after the freeze). Fixes the escape pool: the vault's balance minus
            claimable withdrawals minus refundable deposits (0 if that is negative).
    """
    assert self.frozen, "vault is not frozen"
    assert self.accounts_root == empty(bytes32), "escape is already open"
    root: bytes32 = keccak256(
        abi_encode(accounts_root, instruments_root, self.escape_batch, last_sequence, genesis_config_hash)
    )
    assert root == self.escape_state_root, "roots do not match the finalised state root"
    # Saturating: an inconsistent finalised state (more owed than held) must not block the
    # escape hatch; escapes then pay nothing and claims and refunds are paid while they last.
    balance: uint256 = staticcall token.balanceOf(self)
    owed: uint256 = self.total_claimable + self.refund_reserve
    pool: uint256 = 0
    if balance > owed:
        pool = balance - owed
    self.accounts_root = accounts_root
    self.instruments_root = instruments_root
    self.escape_pool = pool
    log EscapeOpened(accounts_root=accounts_root, instruments_root=instruments_root, escape_pool=pool)


@external
def post_instrument(
    instrument_id: uint32,
    settlement_price: int256,
    funding_index: int256,
    size_decimals: uint8,
    proof_bitmap: uint32,
    proof: DynArray[bytes32, TREE_DEPTH],
):
    """
    @notice Post an instrument's committed settlement values (anyone, once per instrument,
            after open_escape), proven against the instruments root. Escapes of accounts
            holding the instrument need it. Values must fit the storage packing:
            |settlement_price|, |funding_index| < 2**119 and size_decimals <= 30.
    """
    instruments_root: bytes32 = self.instruments_root
    assert instruments_root != empty(bytes32), "escape is not open"
    assert self.instrument_packed[instrument_id] == 0, "instrument already posted"
    assert settlement_price >= -PACKED_BIAS and settlement_price < PACKED_BIAS, "settlement price out of range"
    assert funding_index >= -PACKED_BIAS and funding_index < PACKED_BIAS, "funding index out of range"
    assert convert(size_decimals, uint256) <= MAX_SIZE_DECIMALS, "size decimals out of range"
    leaf: bytes32 = keccak256(abi_encode(instrument_id, settlement_price, funding_index, size_decimals))
    assert self._compute_root(leaf, instrument_id, proof_bitmap, proof) == instruments_root, "bad instrument proof"
    self.instrument_packed[instrument_id] = (
        convert(settlement_price + PACKED_BIAS, uint256)
        | (convert(funding_index + PACKED_BIAS, uint256) << 120)
        | (convert(size_decimals, uint256) << 240)
        | (1 << 248)
    )
    log InstrumentPosted(
        instrument_id=instrument_id,
        settlement_price=settlement_price,
        funding_index=funding_index,
        size_decimals=size_decimals,
    )


@external
@nonreentrant
def escape(
    account_index: uint32,
    owner: address,
    cash: int256,
    positions: DynArray[Position, MAX_POSITIONS],
    proof_bitmap: uint32,
    proof: DynArray[bytes32, TREE_DEPTH],
) -> uint256:
    """
    @notice Pay account `account_index` its escape value at the last finalised root, once
            (anyone may call; `owner` from the leaf is paid). The leaf fields must be
            exactly the committed ones (positions sorted by instrument id, no zero size),
            proven by a compact proof against the accounts root; every instrument held
            must have been posted. Returns the amount paid.
    """
    accounts_root: bytes32 = self.accounts_root
    assert accounts_root != empty(bytes32), "escape is not open"
    index: uint256 = convert(account_index, uint256)
    word: uint256 = self.escaped_bits[index >> 8]
    bit: uint256 = 1 << (index & 255)
    assert word & bit == 0, "account already escaped"
    leaf: bytes32 = keccak256(abi_encode(account_index, owner, cash, positions))
    assert self._compute_root(leaf, account_index, proof_bitmap, proof) == accounts_root, "bad account proof"
    value: uint256 = self._escape_value(cash, positions)
    assert value > 0, "nothing to escape"
    pool: uint256 = self.escape_pool
    assert value <= pool, "escape pool exhausted"
    self.escape_pool = pool - value
    self.escaped_bits[index >> 8] = word | bit
    log Escaped(account_index=account_index, owner=owner, amount=value)
    assert extcall token.transfer(owner, value, default_return_value=True), "token transfer failed"
    return value


@external
@nonreentrant
def refund_deposit(deposit_id: uint256) -> uint256:
    """
    @notice Once frozen, return a deposit that no finalised batch included to the address
            that paid it (anyone may call). Returns the amount refunded.
    """
    assert self.frozen, "vault is not frozen"
    assert deposit_id >= 1 and deposit_id <= self.deposit_count, "unknown deposit"
    assert deposit_id > self.finalised_last_deposit_id, "deposit was included in a finalised batch"
    assert not self.deposit_refunded[deposit_id], "deposit already refunded"
    amount: uint256 = self.deposit_cumulative[deposit_id] - self.deposit_cumulative[deposit_id - 1]
    depositor: address = self.deposit_depositor[deposit_id]
    self.deposit_refunded[deposit_id] = True
    self.refund_reserve -= amount
    log DepositRefunded(deposit_id=deposit_id, depositor=depositor, amount=amount)
    assert extcall token.transfer(depositor, amount, default_return_value=True), "token transfer failed"
    return amount


# ============================================================================== internals


@internal
@view
def _compute_root(
    leaf: bytes32, index: uint32, proof_bitmap: uint32, proof: DynArray[bytes32, TREE_DEPTH]
) -> bytes32:
    # compact proof: bit `level` of the bitmap set <=> the sibling at `level` is the next
    # element of `proof`; otherwise it is the empty-subtree hash of that level
    path: uint256 = convert(index, uint256)
    bitmap: uint256 = convert(proof_bitmap, uint256)
    count: uint256 = len(proof)
    node: bytes32 = leaf
    used: uint256 = 0
    sibling: bytes32 = empty(bytes32)
    for level: uint256 in range(TREE_DEPTH):
        if bitmap & 1 == 1:
            if used == count:
                return empty(bytes32)
            sibling = proof[used]
            used = unsafe_add(used, 1)
        else:
            sibling = ZERO_HASHES[level]
        if path & 1 == 0:
            node = keccak256(concat(node, sibling))
        else:
            node = keccak256(concat(sibling, node))
        bitmap >>= 1
        path >>= 1
    if used != count:
        return empty(bytes32)
    return node


@internal
@view
def _escape_value(cash: int256, positions: DynArray[Position, MAX_POSITIONS]) -> uint256:
    # value = max(0, cash + sum(floor(size * price / 10**d)
    #                           + floor(-size * (F_instrument - F_position) / (10**d * 10**6))))
    # Divisors are positive, so unsafe_div cannot overflow and |q * divisor| <= |numerator|;
    # unsafe_div truncates toward zero, hence the -1 for inexact negative quotients.
    total: int256 = cash
    for position: Position in positions:
        packed: uint256 = self.instrument_packed[position.instrument_id]
        assert packed != 0, "instrument not posted"
        price: int256 = convert(packed & MASK_120, int256) - PACKED_BIAS
        funding: int256 = convert((packed >> 120) & MASK_120, int256) - PACKED_BIAS
        scale: int256 = convert(pow_mod256(10, (packed >> 240) & 255), int256)

        numerator: int256 = position.size * price
        quotient: int256 = unsafe_div(numerator, scale)
        if numerator < 0 and unsafe_mul(quotient, scale) != numerator:
            quotient = unsafe_sub(quotient, 1)
        total += quotient

        numerator = -position.size * (funding - position.funding_index)
        divisor: int256 = unsafe_mul(scale, FUNDING_INDEX_SCALE)  # <= 10**36
        quotient = unsafe_div(numerator, divisor)
        if numerator < 0 and unsafe_mul(quotient, divisor) != numerator:
            quotient = unsafe_sub(quotient, 1)
        total += quotient
    if total <= 0:
        return 0
    return convert(total, uint256)
