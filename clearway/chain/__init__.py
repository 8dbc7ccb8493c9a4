"""L1 settlement: the Vyper vault contracts, their deployment, and attestation signing.

``clearway.chain.contracts`` compiles and deploys ``contracts/*.vy`` (titanoboa in-process
EVM, imported lazily) and signs EIP-712 batch attestations. Importing this package loads
nothing heavy.
"""
