"""Cost of an order's EIP-712 signature (issue 7's trust model): ``clearway bench signatures
--json`` signs and recovers a ``PlaceOrder`` 300 times per run (``--runs``) with
``authorisation.sign_command`` / ``recover_signer`` (eth-keys); the median of each."""

from __future__ import annotations

import time

from eth_keys import keys

from clearway.commitment.authorisation import exchange_domain_separator, recover_signer, sign_command
from clearway.domain.commands import PlaceOrder
from stats import percentile  # bench/ is on sys.path

SIGNATURES = 300


def run(args) -> dict:
    runs = max(1, getattr(args, "runs", 3) or 1)
    key = bytes(range(1, 33))
    owner = keys.PrivateKey(key).public_key.to_checksum_address()
    domain = exchange_domain_separator(1, "0x" + "11" * 20)
    command = PlaceOrder(1, 1, 5, 0, 1, 100, 60_000_000_000)
    sign, recover = [], []
    clock = time.perf_counter
    for _ in range(runs):
        for nonce in range(SIGNATURES):
            started = clock()
            auth = sign_command(key, domain, command, owner, nonce)
            signed = clock()
            if recover_signer(domain, command, owner, auth) != owner:
                raise RuntimeError("signature did not recover its signer")
            sign.append(signed - started)
            recover.append(clock() - signed)
    return {"signatures": len(sign), "sign_ms": round(percentile(sign, 0.5) * 1e3, 3),
            "recover_ms": round(percentile(recover, 0.5) * 1e3, 3)}


def print_report(result: dict) -> None:
    print(f"EIP-712 order signature: sign {result['sign_ms']} ms, recover {result['recover_ms']} ms "
          f"(medians of {result['signatures']:,})")
