"""The spend cap: a consultation or follow-up reserves its worst case before any Claude call.

    guard = SpendGuard.from_settings(settings, engine_settings, store, client)   None: no cap set
    held = await guard.hold(channel, guard.worst_case.consultation_usd(mode, photos=1, context=text))
    if held is None: reply BUDGET_REACHED, send nothing to Claude
    ... the engine runs ...
    await guard.settle(held, recommendation.usage.cost_usd)     or the usage known after a failure

The ledger lives in the store (`Store.reserve`), so every instance on one database shares the day's
caps and concurrent consultations cannot overshoot them. The worst case is every call at its
`max_tokens` output plus its prompt input (text at `CHARS_PER_TOKEN`, photos at their largest
size) at the list price, input priced as a cache write where that costs more. A call cut off at
`max_tokens` is retried with a larger budget (matrec.retry), which the worst case leaves out: the
settled cost is the true one, so such a retry can take a day past its cap by at most that call.

Once a reservation or settlement brings the day to `ALERT_FRACTION` of the daily cap, one warning
goes to the alert channel; the store's per-day flag makes it once across instances.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Final

from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import BotSettings
from bot.store import Clock, Reservation, Store, utc_now
from bot.writer import best_effort
from matrec import prompting
from matrec.choices import Mode
from matrec.eval.estimate import image_tokens, text_tokens
from matrec.followup import Finished, FollowUpEvent
from matrec.materials import CLASS_ORDER
from matrec.models import Prices
from matrec.results import BranchResult, TokenUsage
from matrec.settings import EngineSettings

log = logging.getLogger(__name__)

BUDGET_REACHED: Final = "The team's matrec budget for today is reached; it resets at 00:00 UTC."
ALERT_FRACTION: Final = 0.8  # of the daily cap: one warning to the alert channel per day
TOKENS_PER_MTOK: Final = 1_000_000
CALL_OVERHEAD_TOKENS: Final = 2_000  # output schema, task text and framing around each call's prompt
CAP_VARIABLES: Final = "MATREC_DAILY_CAP_USD/MATREC_CHANNEL_DAILY_CAP_USD"


def unpriced_cap(settings: BotSettings, engine: EngineSettings) -> str | None:
    """Why a spend cap cannot work (a cap is set but the model has no price), or None."""
    if settings.daily_cap_usd is None and settings.channel_daily_cap_usd is None:
        return None
    if engine.price_table is not None:
        return None
    return (
        f"{CAP_VARIABLES} is set but model {engine.model} has no price: set MATREC_PRICES__INPUT_USD_PER_MTOK "
        "and MATREC_PRICES__OUTPUT_USD_PER_MTOK, or unset the cap"
    )


@dataclass(frozen=True)
class WorstCase:
    """What a consultation or a follow-up can cost at most, from the engine settings and prices."""

    engine: EngineSettings
    prices: Prices

    def consultation_usd(self, mode: Mode, *, photos: int, context: str) -> float:
        """Every call of one consultation at its max_tokens, with its whole prompt, at list price."""
        e = self.engine
        branches = len(CLASS_ORDER) * (len(e.conditions) if mode is Mode.NESTED else 1)
        shared = text_tokens(prompting.shared_text(context, photos=photos)) + CALL_OVERHEAD_TOKENS
        branch_input = text_tokens(prompting.branch_system()) + shared + photos * self._photo_tokens()
        # The aggregator reads every analysis, each at most a branch's max_tokens.
        aggregate_input = text_tokens(prompting.aggregator_system()) + shared + branches * e.branch_max_tokens
        return self._cost(
            input_tokens=branches * branch_input + aggregate_input,
            output_tokens=branches * e.branch_max_tokens + e.aggregate_max_tokens,
        )

    def follow_up_usd(self, *, photos: int, texts: Sequence[str]) -> float:
        """One follow-up answer at its max_tokens, with the consultation, history and question sent."""
        text = text_tokens(prompting.followup_system()) + sum(text_tokens(t) for t in texts) + CALL_OVERHEAD_TOKENS
        return self._cost(
            input_tokens=text + photos * self._photo_tokens(), output_tokens=self.engine.followup_max_tokens
        )

    def _photo_tokens(self) -> int:
        edge = self.engine.max_image_edge_px
        return image_tokens(edge, edge, edge)

    def _cost(self, *, input_tokens: int, output_tokens: int) -> float:
        input_price = max(self.prices.input_usd_per_mtok, self.prices.cache_write_usd_per_mtok)
        return (input_tokens * input_price + output_tokens * self.prices.output_usd_per_mtok) / TOKENS_PER_MTOK


class SpendGuard:
    """Reserves, settles and warns against the day's caps in the shared ledger."""

    def __init__(
        self,
        *,
        store: Store,
        client: AsyncWebClient,
        engine: EngineSettings,
        prices: Prices,
        cap_day_usd: float | None,
        cap_channel_usd: float | None,
        alert_channel: str | None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.client = client
        self.prices = prices
        self.worst_case = WorstCase(engine, prices)
        self.cap_day_usd = cap_day_usd
        self.cap_channel_usd = cap_channel_usd
        self.alert_channel = alert_channel
        self.clock = clock

    @classmethod
    def from_settings(
        cls, settings: BotSettings, engine: EngineSettings, store: Store, client: AsyncWebClient
    ) -> SpendGuard | None:
        """The guard for the configured caps; None when no cap is set. Check `unpriced_cap` first."""
        if settings.daily_cap_usd is None and settings.channel_daily_cap_usd is None:
            return None
        prices = engine.price_table
        if prices is None:
            raise ValueError(unpriced_cap(settings, engine))
        return cls(
            store=store,
            client=client,
            engine=engine,
            prices=prices,
            cap_day_usd=settings.daily_cap_usd,
            cap_channel_usd=settings.channel_daily_cap_usd,
            alert_channel=settings.budget_alert_channel,
        )

    def known_cost_usd(self, branches: Sequence[BranchResult]) -> float:
        """What the calls behind `branches` cost: the usage known after a consultation failed."""
        return TokenUsage.total([b.usage for b in branches]).cost_usd(self.prices)

    async def hold(self, channel: str, amount_usd: float) -> Reservation | None:
        """Reserve `amount_usd` for a call in `channel` today (UTC); None past a cap."""
        held = await self.store.reserve(
            self.clock().date(), channel, amount_usd, cap_day=self.cap_day_usd, cap_channel=self.cap_channel_usd
        )
        if held is None:
            log.info("spend cap reached: $%.4f refused in %s", amount_usd, channel)
            return None
        await self._maybe_alert(held)
        return held

    async def settle(self, held: Reservation, actual_usd: float | None) -> None:
        """Replace the reservation by the actual cost (None: unknown, nothing is counted)."""
        await self.store.settle(held, actual_usd or 0.0)

    async def metered(self, held: Reservation, events: AsyncIterator[FollowUpEvent]) -> AsyncIterator[FollowUpEvent]:
        """A follow-up's events, settling `held` at the answer's cost (or nothing, if it failed)."""
        settled = False
        try:
            async for event in events:
                if isinstance(event, Finished):
                    await self.settle(held, event.reply.cost_usd)
                    settled = True
                yield event
        finally:
            if not settled:
                await self.settle(held, None)

    async def _maybe_alert(self, held: Reservation) -> None:
        if self.alert_channel is None or self.cap_day_usd is None:
            return
        spent = await self.store.spent(held.day)
        if spent < ALERT_FRACTION * self.cap_day_usd or not await self.store.claim_spend_alert(held.day):
            return
        text = (
            f":warning: matrec has committed ${spent:.2f} of today's ${self.cap_day_usd:.2f} budget "
            f"({spent / self.cap_day_usd:.0%}). New consultations stop at the cap until 00:00 UTC."
        )
        await best_effort(self.client.chat_postMessage(channel=self.alert_channel, text=text), "budget warning")
