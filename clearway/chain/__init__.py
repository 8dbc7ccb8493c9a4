"""L1 settlement: the Vyper vault contracts and everything that talks to them.

- ``contracts``: compile and deploy ``contracts/*.vy``, EIP-712 batch attestations;
- ``backend`` / ``rpc``: the :class:`~clearway.chain.backend.Chain` interface, embedded
  (titanoboa's in-process EVM) and over JSON-RPC (anvil, any EVM node); ``abi`` codes
  calls and events for both; ``vault``: a typed client of the vault and its stablecoin;
- ``watcher``: vault deposits and forced-withdrawal requests → sequencer commands;
- ``batcher``: journal → batches (``clearway.commitment.batch``) → submit → finalise, with
  ``inbox`` (its durable memory) and ``attest`` (local verifiers);
- ``selftest`` / ``cli``: ``clearway chain selftest``.

The chain layer reaches the sequencer only through small protocols (``watcher.Sequencer``,
``batcher.CommandLog``); it never imports the engine. Importing this package loads nothing
heavy.
"""
