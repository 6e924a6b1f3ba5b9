"""The shared Slack budget: Slack's app-wide rate limits, kept in the database every instance uses.

rates.py    SlackRates: which bucket a call spends from (method by tier, or chat.postMessage per
            channel), paced under Slack's rates; Priority: FINAL > NORMAL > PROGRESS
shared.py   UpdateBudget: takes a call's token from the store, waits for room or gives way
client.py   BudgetedClient: every Web API call inside the budget; `calls_at` sets a call's
            priority; NoRoom is the 429-shaped error of a call that got no room
"""

from bot.budget.client import BudgetedClient, NoRoom, calls_at
from bot.budget.rates import Priority, SlackRates
from bot.budget.shared import UpdateBudget

__all__ = ["BudgetedClient", "NoRoom", "Priority", "SlackRates", "UpdateBudget", "calls_at"]
