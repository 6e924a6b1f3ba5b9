"""Prometheus metrics of one bot process, in a registry of its own (never the library's global one).

    metrics = Metrics()
    metrics.watch_queue(engine.admission)      # running/waiting, read at each scrape
    metrics.watch_budget(spend)                # today's spend against the cap, read from the shared ledger
    metrics.watch_claude_budget(claude_budget) # Claude calls in flight and waiting, all instances together
    metrics.consultation_ended(ended)          # outcome, branch latencies, failures, tokens, cost
    metrics.followup_ended("answered")        # a turn's status, "error" or "cancelled"
    client.retry_handlers.append(metrics.slack_429_counter())
    body, content_type = await metrics.exposition()

No label ever names a user or a channel: labels are closed sets (outcomes, material classes,
failure kinds, token types, Slack API method names), so a dashboard's cardinality stays fixed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from sqlalchemy.exc import SQLAlchemyError

from bot.claude_budget import StoreBudget
from bot.consultation.ended import Ended
from bot.spend import SpendGuard
from matrec.admission import Admission

log = logging.getLogger(__name__)

NAMESPACE: Final = "matrec"
BUDGET_READ_TIMEOUT_S: Final = 2.0  # a scrape does not wait longer for the ledger
# Branch calls take seconds to minutes (thinking, retries): buckets up to the run deadline's order.
BRANCH_BUCKETS_S: Final = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0)
_HTTP_TOO_MANY_REQUESTS: Final = 429


class Metrics:
    """Every metric the bot exports; one per process, passed to the parts that count."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.consultations = Counter(
            "consultations", "Consultations ended, by outcome.", ["outcome"], namespace=NAMESPACE, registry=r
        )
        self.branch_seconds = Histogram(
            "branch_seconds",
            "Time of each specialist branch (its calls, without queueing), by material class.",
            ["material"],
            namespace=NAMESPACE,
            buckets=BRANCH_BUCKETS_S,
            registry=r,
        )
        self.claude_failures = Counter(
            "claude_call_failures",
            "Claude calls that failed for good, by kind.",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.tokens = Counter(
            "tokens", "Claude tokens of consultations, by type.", ["type"], namespace=NAMESPACE, registry=r
        )
        self.cost = Counter(
            "estimated_cost_usd",
            "Estimated Claude cost of consultations in US dollars.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.slack_429s = Counter(
            "slack_rate_limited",
            "HTTP 429 answers from Slack's Web API, by method.",
            ["method"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.queue = Gauge(
            "consultations_in_queue",
            "Consultations running and waiting for a place.",
            ["state"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.followups = Counter(
            "followups", "Follow-up questions ended, by outcome.", ["outcome"], namespace=NAMESPACE, registry=r
        )
        self.budget_used = Gauge(
            "budget_used_usd",
            "Dollars reserved and settled today (UTC) team-wide, across instances (with a spend cap).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.budget_cap = Gauge(
            "budget_cap_usd", "The team's daily spend cap in dollars (with one).", namespace=NAMESPACE, registry=r
        )
        self.claude_calls = Gauge(
            "claude_calls",
            "Claude calls in flight and waiting for a turn, across instances, as this instance last saw.",
            ["state"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._spend: SpendGuard | None = None

    def watch_queue(self, admission: Admission) -> None:
        """Report `admission`'s running and waiting consultations at every scrape."""
        self.queue.labels(state="running").set_function(lambda: admission.running)
        self.queue.labels(state="waiting").set_function(lambda: admission.waiting)

    def watch_claude_budget(self, budget: StoreBudget) -> None:
        """Report the shared Claude budget's calls in flight and waiting at every scrape (its latest step's counts)."""
        self.claude_calls.labels(state="in_flight").set_function(lambda: budget.last.in_flight if budget.last else 0)
        self.claude_calls.labels(state="waiting").set_function(lambda: budget.last.waiting if budget.last else 0)

    def watch_budget(self, spend: SpendGuard) -> None:
        """Read today's spend from `spend`'s shared ledger at every scrape."""
        self._spend = spend
        if spend.cap_day_usd is not None:
            self.budget_cap.set(spend.cap_day_usd)

    async def refresh(self) -> None:
        """Update what is read from the database (the budget); a database that does not answer leaves it."""
        if self._spend is None:
            return
        try:
            async with asyncio.timeout(BUDGET_READ_TIMEOUT_S):
                used = await self._spend.store.spent(self._spend.clock().date())
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            log.warning("metrics: the spend ledger did not answer (%s)", type(error).__name__)
            return
        self.budget_used.set(used)

    def consultation_ended(self, ended: Ended) -> None:
        """Count one consultation that ended, and what its calls took and cost."""
        self.consultations.labels(outcome=ended.outcome).inc()
        for branch in ended.branches:
            self.branch_seconds.labels(material=branch.material.value).observe(branch.elapsed_s)
            if branch.failure is not None:
                self.claude_failures.labels(kind=branch.failure.value).inc()
        usage = ended.tokens
        for kind, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
        ):
            self.tokens.labels(type=kind).inc(count)
        if ended.cost_usd is not None:
            self.cost.inc(ended.cost_usd)

    def followup_ended(self, outcome: str) -> None:
        """Count one follow-up question that ended: answered, failed, skipped, error or cancelled."""
        self.followups.labels(outcome=outcome).inc()

    def slack_429_counter(self) -> AsyncRetryHandler:
        """A retry handler for the Web API client that counts each 429 and never retries itself."""
        return _Slack429Counter(self.slack_429s)

    async def exposition(self) -> tuple[bytes, str]:
        """The metrics, refreshed, in Prometheus' text format, and its content type."""
        await self.refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Slack429Counter(AsyncRetryHandler):
    """Sees every Web API response the client considers retrying; counts the 429s by method."""

    def __init__(self, counter: Counter) -> None:
        super().__init__(max_retry_count=0)
        self._counter = counter

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == _HTTP_TOO_MANY_REQUESTS:
            self._counter.labels(method=api_method(request.url)).inc()
        return False


def api_method(url: str) -> str:
    """The Web API method a request URL calls (`.../api/chat.update?x=1` is `chat.update`)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
