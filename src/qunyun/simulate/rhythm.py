"""When people post: an hourly profile with morning (08-09), noon (12-13) and evening (20-22)
peaks, a later and flatter profile at weekends, and fewer messages on Saturday and Sunday."""

from __future__ import annotations

import random
from itertools import accumulate

# Relative posting intensity per local hour 0..23.
WEEKDAY_HOURS = (
    0.35, 0.15, 0.07, 0.04, 0.04, 0.10, 0.40, 1.20,
    2.80, 2.30, 1.40, 1.50, 2.90, 2.60, 1.20, 1.00,
    1.00, 1.20, 1.60, 2.20, 3.10, 3.30, 2.70, 1.10,
)  # fmt: skip
WEEKEND_HOURS = (
    0.55, 0.30, 0.12, 0.05, 0.04, 0.06, 0.20, 0.60,
    1.40, 1.90, 1.80, 1.60, 2.20, 2.00, 1.50, 1.40,
    1.40, 1.50, 1.70, 2.00, 2.60, 2.80, 2.40, 1.20,
)  # fmt: skip
WEEKEND_FACTOR = 0.7  # a weekend day has this share of a weekday's messages
# Orders peak in the evening (after work, 20-22) and around noon.
ORDER_HOURS = (
    0.4, 0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3,
    0.6, 0.8, 1.0, 1.0, 1.3, 1.2, 1.0, 1.0,
    1.0, 1.0, 1.1, 1.4, 2.0, 2.3, 1.9, 1.0,
)  # fmt: skip
# Waking hours, for events that a person does deliberately (leaving a group, scanning a card).
WAKING_HOURS = tuple(0.0 if h < 7 else 1.0 for h in range(24))

_CUM = {
    "weekday": list(accumulate(WEEKDAY_HOURS)),
    "weekend": list(accumulate(WEEKEND_HOURS)),
    "order": list(accumulate(ORDER_HOURS)),
    "waking": list(accumulate(WAKING_HOURS)),
}
HOURS = tuple(range(24))


def is_weekend(weekday: int) -> bool:
    return weekday >= 5


def sample_second(rng: random.Random, profile: str) -> int:
    """A second of the day (0..86399) drawn from the hourly ``profile``."""
    hour = rng.choices(HOURS, cum_weights=_CUM[profile])[0]
    return hour * 3600 + int(rng.random() * 3600)


def day_profile(weekday: int) -> str:
    return "weekend" if is_weekend(weekday) else "weekday"
