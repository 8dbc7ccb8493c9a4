"""Rate limits: token buckets per API key (and per unauthenticated connection or address).

Deribit's scheme (https://docs.deribit.com "Rate limits"): matching-engine requests
(buy, sell, edit, cancel…) and other requests draw on separate credit pools, each with a
sustained rate and a burst. A request over the limit is answered with 10028
``too_many_requests`` (ccxt: DDoSProtection) and does nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Requests per second (sustained) and burst, per pool. Defaults suit a market maker
    on one key; ``ApiConfig`` can raise or lower them."""

    matching_rate: float = 2_000.0
    matching_burst: float = 4_000.0
    other_rate: float = 500.0
    other_burst: float = 1_000.0
    public_rate: float = 200.0   # per unauthenticated connection / remote address
    public_burst: float = 500.0


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take()`` spends one if available."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < cost:
            self.tokens = tokens
            return False
        self.tokens = tokens - cost
        return True


class RateLimiter:
    """Buckets by identity: ``("key", client_id)`` for an API key, anything else for
    anonymous callers. Bounded: the oldest anonymous identities are forgotten first."""

    def __init__(self, limits: Limits, max_anonymous: int = 10_000) -> None:
        self.limits = limits
        self.max_anonymous = max_anonymous
        self._keys: dict[str, tuple[TokenBucket, TokenBucket]] = {}
        self._anonymous: dict[object, TokenBucket] = {}

    def allow(self, client_id: str | None, anonymous: object, matching: bool) -> bool:
        if client_id is not None:
            pair = self._keys.get(client_id)
            if pair is None:
                limits = self.limits
                pair = self._keys[client_id] = (TokenBucket(limits.matching_rate, limits.matching_burst),
                                                TokenBucket(limits.other_rate, limits.other_burst))
            return pair[0 if matching else 1].take()
        bucket = self._anonymous.get(anonymous)
        if bucket is None:
            if len(self._anonymous) >= self.max_anonymous:
                self._anonymous.pop(next(iter(self._anonymous)))
            bucket = self._anonymous[anonymous] = TokenBucket(self.limits.public_rate, self.limits.public_burst)
        return bucket.take()

    def forget(self, anonymous: object) -> None:
        self._anonymous.pop(anonymous, None)
