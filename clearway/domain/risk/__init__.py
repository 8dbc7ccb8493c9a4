"""Pure pricing and margin functions of the risk engine (no exchange state).

- :mod:`.black76` — Black-76 prices and Greeks on the forward (numpy, vectorised).
- :mod:`.implied_vol` — implied volatility via Jäckel's "Let's be rational".
- :mod:`.svi` — SVI raw volatility slices: evaluation, arbitrage checks, calibration.
- :mod:`.standard_options` — options standard margin with the per-expiry max-loss cap.
- :mod:`.portfolio` — scenario-based portfolio margin (``specs/portfolio-margin.md``).

Nothing here does I/O, reads a clock or draws random numbers.
"""
