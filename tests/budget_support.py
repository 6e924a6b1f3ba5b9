"""The shared Slack budget for tests: a budgeted client on a store, with rates a test picks."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.budget import BudgetedClient, SlackRates, UpdateBudget
from bot.pointers import Pointers
from bot.store import Store
from emulators.slack import SlackEmulator

POINTER_LEASE_S = 1.0  # a pointer waits half of it for room, then its round ends


class Seconds:
    """A Unix-seconds clock that moves only when told to."""

    def __init__(self, now_s: float = 2_000_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def rates(
    *, tier2: float = 20.0, tier3: float = 50.0, tier4: float = 100.0, burst: int = 10, reserve: float = 3.0
) -> SlackRates:
    """Slack's rates as given, used whole (no pacing margin), so a test can count tokens exactly."""
    return SlackRates(
        tier_per_minute={1: 1.0, 2: tier2, 3: tier3, 4: tier4}, burst=burst, pacing=1.0, final_reserve=reserve
    )


def budgeted_client(
    slack: SlackEmulator,
    store: Store,
    slack_rates: SlackRates,
    *,
    final_update_wait_s: float = 0.5,
    clock: Callable[[], float] = time.time,
) -> BudgetedClient:
    """A client as bot/service.py builds it, inside a budget (and pointers) on `store`, on `clock`."""
    client = BudgetedClient(token=slack.bot_token, base_url=slack.api_url)
    pointers = Pointers(store, client, poll_s=0.05, lease_s=POINTER_LEASE_S, clock=clock)
    client.budget = UpdateBudget(
        store, slack_rates, final_update_wait_s=final_update_wait_s, pointers=pointers, clock=clock
    )
    return client
