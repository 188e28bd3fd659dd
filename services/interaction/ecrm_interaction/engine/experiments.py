"""A/B statistics of a broadcast (pure): rates with their uncertainty, and the winner.

Written here rather than imported: neither scipy nor statsmodels is in the lock, and what is
needed is three textbook formulas.

- :func:`wilson_interval`: the Wilson score interval of a proportion (Wilson 1927), which,
  unlike the normal ("Wald") interval, stays inside [0, 1] and is honest for small counts
  and rates near 0 (a click rate of 2 in 40).
- :func:`two_proportion_test`: the two-sided z-test of two proportions with the pooled
  standard error; the p-value from the normal distribution (``math.erfc``).
- :func:`choose_winner`: the variant with the highest rate on the chosen metric, with the
  p-value of it against the runner-up; it is called ``significant`` below ``alpha`` (0.05).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The two-sided 95 % quantile of the standard normal distribution."""


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` in ``trials`` (default 95 %); (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    successes = max(0, min(successes, trials))
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Group A against group B: the difference of rates (A - B), its z score and p-value."""

    difference: float
    z: float
    p_value: float


def two_proportion_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> Comparison:
    """The two-sided pooled z-test of ``successes_a / trials_a`` against ``successes_b / trials_b``.
    With an empty group, or no variation at all (both 0 % or both 100 %), the p-value is 1."""
    if trials_a <= 0 or trials_b <= 0:
        return Comparison(0.0, 0.0, 1.0)
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    error = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if error == 0:
        return Comparison(rate_a - rate_b, 0.0, 1.0)
    z = (rate_a - rate_b) / error
    return Comparison(rate_a - rate_b, z, math.erfc(abs(z) / math.sqrt(2)))


@dataclass(frozen=True, slots=True)
class Arm:
    """A variant's figure on the chosen metric: ``successes`` of ``trials`` (e.g. clicked of sent)."""

    name: str
    successes: int
    trials: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None


@dataclass(frozen=True, slots=True)
class Winner:
    name: str | None
    """The leading variant; None when there is nothing to compare yet (fewer than two arms with trials)."""
    runner_up: str | None
    comparison: Comparison | None
    """The leader against the runner-up."""
    significant: bool
    """Whether the lead is unlikely to be chance (p < alpha)."""


def choose_winner(arms: Sequence[Arm], alpha: float = 0.05) -> Winner:
    """The arm with the highest rate (ties: the first), tested against the second best."""
    ranked = sorted((a for a in arms if a.trials > 0), key=lambda a: -(a.rate or 0.0))
    if len(ranked) < 2:
        return Winner(None, None, None, False)
    best, second = ranked[0], ranked[1]
    if best.rate == second.rate:
        comparison = two_proportion_test(best.successes, best.trials, second.successes, second.trials)
        return Winner(None, None, comparison, False)
    comparison = two_proportion_test(best.successes, best.trials, second.successes, second.trials)
    return Winner(best.name, second.name, comparison, comparison.p_value < alpha)
