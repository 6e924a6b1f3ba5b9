"""The team's memory: earlier consultations as links, and what a board shows around its recommendation.

`view_for(consultation)` gathers a board's surroundings from the store: the team's choices and
ratings, what a re-run changed, and up to three similar earlier consultations. A similar one is
linked on the board only when every member of the board's conversation is also a member of the
linked one's conversation; the ones only the uploader may see go to the uploader alone, ephemerally,
once. Names are display names read with users.info and written as plain text: nobody is pinged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence

from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.blocks.kit import Rendered, clip, context, section
from bot.board_view import BoardView, SimilarLink
from bot.store import Consultation, ConsultationKind, ConsultationStatus, Stats, Store
from bot.writer import best_effort
from matrec.materials import CLASS_ORDER, PROFILES, MaterialClass

log = logging.getLogger(__name__)

# A permalink Slack gave us: https, with none of the characters that would end or split a mrkdwn link.
_SAFE_LINK = re.compile(r"https://[^\s<>|&]+")

SIMILAR_LIMIT = 3  # similar earlier consultations linked from one new one
SIMILAR_TIMEOUT_S = 5.0  # how long a board waits for its similar links before going without
NAME_TTL_S = 3600.0  # how long a display name is reused before users.info is asked again
PERMALINKS_REMEMBERED = 1_000  # permalinks of earlier boards kept, oldest forgotten first
PART_CHARS = 80  # a linked consultation's part description, at most
SEARCH_TEXT_CHARS = 2_000  # of a consultation's own text, used to find similar ones
SOMEONE = "someone"  # who, when Slack cannot name the person (or nobody asked)
PRIVATE_LINKS_INTRO = (
    "Similar earlier consultations, shown only to you: not everyone in this conversation can open them."
)


class Memory:
    """Board surroundings from the store, and earlier consultations as `SimilarLink`s."""

    def __init__(
        self,
        store: Store,
        access: Access,
        client: AsyncWebClient,
        *,
        bot_user_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._access = access
        self._client = client
        self._bot_user_id = bot_user_id
        self._clock = clock
        self._names: dict[str, tuple[float, str]] = {}
        self._permalinks: dict[tuple[str, str], str] = {}

    async def view_for(self, consultation: Consultation, *, share_private: bool = True) -> BoardView:
        """The board's surroundings; the first call for an upload also sends its private links.

        Re-renders after a click pass `share_private=False`: the uploader got those links already.
        """
        feedback = await self._store.feedback(consultation.id)
        ratings = (
            sum(1 for f in feedback if f.rating == "helpful"),
            sum(1 for f in feedback if f.rating == "not_helpful"),
        )
        on_board: list[SimilarLink] = []
        if consultation.kind is ConsultationKind.UPLOAD:
            try:
                async with asyncio.timeout(SIMILAR_TIMEOUT_S):  # the board must not wait on a slow Slack
                    on_board, private = await self.similar_for(consultation)
            except TimeoutError:
                log.warning("similar consultations of %s took too long; the board goes without", consultation.id)
                private = []
            if private and share_private and consultation.parent_id is None:  # not again for each split
                await self._share_privately(consultation, private)
        previous = None
        if consultation.parent_id is not None and consultation.kind is not ConsultationKind.UPLOAD:
            parent = await self._store.get(consultation.parent_id)
            previous = parent.recommendation if parent is not None else None
        return BoardView(
            consultation_id=consultation.id,
            photos=len(consultation.files) or (1 if consultation.file_id else 0),
            kind=consultation.kind.value,
            changes=tuple(consultation.requirements),
            previous=previous,
            choices=await self._store.choices(consultation.id),
            ratings=ratings,
            similar=tuple(on_board),
        )

    async def similar_for(self, consultation: Consultation) -> tuple[list[SimilarLink], list[SimilarLink]]:
        """Up to three similar earlier consultations: (for the board, for the uploader alone).

        The three most similar ones among the conversations the uploader is in (its own thread's left
        out); one goes on the board when every member of this conversation is in its conversation,
        else to the uploader alone. Without an uploader, only this conversation's own are candidates.
        """
        text = search_text(consultation)
        if not text:
            return [], []
        if consultation.user_id:
            candidates = await self._access.visible_channels(consultation.user_id, await self._store.channels())
        else:
            candidates = {consultation.channel}
        thread = await self._store.for_thread(consultation.channel, consultation.thread_ts)
        exclude = {consultation.id, *(other.id for other in thread)}
        found = await self._store.similar(text, channels=candidates, exclude_ids=exclude, limit=SIMILAR_LIMIT)
        if not found:
            return [], []
        viewers = await self.viewers(consultation.channel)
        everyone = await asyncio.gather(*(self._access.can_see_all(viewers, c.channel) for c in found))
        links = await self.links(found)
        on_board = [link for link, ok in zip(links, everyone, strict=True) if ok]
        private = [link for link, ok in zip(links, everyone, strict=True) if not ok]
        return on_board, private

    async def viewers(self, channel: str) -> frozenset[str]:
        """The people in `channel` (the bot left out)."""
        return await self._access.members(channel) - {self._bot_user_id}

    async def links(self, consultations: Sequence[Consultation]) -> list[SimilarLink]:
        """Each consultation as a link: who, when, which part, what came of it, its board's permalink."""
        return list(await asyncio.gather(*(self.link(c) for c in consultations)))

    async def link(self, consultation: Consultation) -> SimilarLink:
        """One consultation as a `SimilarLink`."""
        choices = await self._store.choices(consultation.id)
        return SimilarLink(
            who=await self.name(consultation.user_id),
            when=consultation.created_at.date(),
            part=part_of(consultation),
            outcome=outcome_of(consultation, choices),
            link=await self.permalink(consultation.channel, consultation.board_ts or consultation.message_ts),
        )

    async def name(self, user_id: str | None) -> str:
        """A person's display name (users.info, remembered for an hour); never a mention."""
        if not user_id:
            return SOMEONE
        cached = self._names.get(user_id)
        if cached is not None and self._clock() - cached[0] <= NAME_TTL_S:
            return cached[1]
        response = await best_effort(self._client.users_info(user=user_id), f"users.info {user_id}")
        if response is None:
            return SOMEONE
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = str(profile.get("display_name") or profile.get("real_name") or user.get("name") or SOMEONE)
        self._names[user_id] = (self._clock(), name)
        return name

    async def permalink(self, channel: str, ts: str) -> str | None:
        """The message's permalink, or None when Slack cannot give one.

        A message's permalink never changes, so each is asked for once (the most recent
        `PERMALINKS_REMEMBERED` are kept): boards linking the same earlier parts cost no extra calls.
        """
        known = self._permalinks.get((channel, ts))
        if known is not None:
            return known
        call = self._client.chat_getPermalink(channel=channel, message_ts=ts)
        response = await best_effort(call, f"permalink of {channel}/{ts}", level=logging.INFO)
        permalink = response.get("permalink") if response is not None else None
        if not permalink:
            return None
        if len(self._permalinks) >= PERMALINKS_REMEMBERED:
            self._permalinks.pop(next(iter(self._permalinks)))  # the oldest
        self._permalinks[(channel, ts)] = str(permalink)
        return str(permalink)

    async def _share_privately(self, consultation: Consultation, private: Sequence[SimilarLink]) -> None:
        """Post the links only the uploader may open, to the uploader, once per consultation."""
        if consultation.user_id is None:
            return
        # The store's dedupe keys make it once, across restarts and replicas too.
        if not await self._store.claim(None, consultation.channel, f"{consultation.id}:similar"):
            return
        rendered = private_links(private)
        call = self._client.chat_postEphemeral(
            channel=consultation.channel,
            user=consultation.user_id,
            thread_ts=consultation.thread_ts,
            text=rendered.text,
            blocks=rendered.blocks,
        )
        await best_effort(call, f"could not send private similar links in {consultation.channel}")


def search_text(consultation: Consultation) -> str:
    """What a consultation is about, as words to look for in earlier ones."""
    rec = consultation.recommendation
    pieces = [consultation.part_text, rec.part if rec else "", consultation.context]
    return " ".join(" ".join(p for p in pieces if p).split())[:SEARCH_TEXT_CHARS]


def part_of(consultation: Consultation) -> str:
    """A short description of the consultation's part (raw text: renderers escape it)."""
    rec = consultation.recommendation
    for candidate in (consultation.part_text, rec.part if rec else "", consultation.file_name, consultation.context):
        if candidate and candidate.strip():
            text = " ".join(candidate.split())
            return text if len(text) <= PART_CHARS else text[: PART_CHARS - 1].rstrip() + "…"
    return "a part"


def team_choice(choices: Mapping[MaterialClass, int], best: MaterialClass | None = None) -> MaterialClass | None:
    """The class most people chose; a tie goes to matrec's best if it is among them, else class order."""
    if not choices or max(choices.values()) <= 0:
        return None
    top = max(choices.values())
    tied = [c for c in CLASS_ORDER if choices.get(c, 0) == top]
    return best if best in tied else tied[0]


def outcome_of(consultation: Consultation, choices: Mapping[MaterialClass, int]) -> str:
    """What came of a consultation: the team's choice if any, else matrec's recommendation."""
    rec = consultation.recommendation
    chosen = team_choice(choices, rec.best if rec else None)
    if chosen is not None:
        return f"the team chose {label(chosen)}"
    if rec is not None:
        return f"matrec recommended {label(rec.best)}"
    if consultation.status in (ConsultationStatus.RECEIVED, ConsultationStatus.RUNNING):
        return "still being analysed"
    return "no recommendation"


def label(material: MaterialClass) -> str:
    """A class's name inside a sentence ("polymer")."""
    return PROFILES[material].label.lower()


def link_line(link: SimilarLink) -> str:
    """One earlier consultation as a mrkdwn line: escaped, linked when a permalink is known."""
    when = f"{link.when.day} {link.when:%b %Y}"
    words = f"{clip(link.who, 60)} looked at {clip(link.part, PART_CHARS)} on {when}"
    linked = f"<{link.link}|{words}>" if link.link and _SAFE_LINK.fullmatch(link.link) else words
    return f"{linked}; {clip(link.outcome, 80)}"


def private_links(links: Sequence[SimilarLink]) -> Rendered:
    """The ephemeral message with the similar consultations only the uploader may open."""
    lines = "\n".join(f"• {link_line(link)}" for link in links)
    return Rendered(
        text=PRIVATE_LINKS_INTRO,
        blocks=[context(PRIVATE_LINKS_INTRO), section(lines)],
    )


def link_lines(links: Sequence[SimilarLink]) -> list[str]:
    """Earlier consultations as bullet lines (mrkdwn)."""
    return [f"• {link_line(link)}" for link in links]


def stats_lines(stats: Stats) -> list[str]:
    """Statistics as short mrkdwn lines: per week, class distribution, how often the team agreed."""
    if stats.total == 0:
        return ["No consultations in these weeks yet."]
    weeks = " · ".join(f"{monday.day} {monday:%b}: {count}" for monday, count in stats.per_week)
    lines = [
        f"*{stats.total}* {plural(stats.total, 'consultation')} in the last {len(stats.per_week)} weeks",
        f"Per week (from Monday): {weeks}",
    ]
    if stats.best:
        lines.append("Recommended: " + _distribution(stats.best))
    if stats.chosen:
        lines.append("The team chose: " + _distribution(stats.chosen))
    if stats.with_choice:
        share = round(100 * stats.agreed / stats.with_choice)
        lines.append(
            f"The team chose what matrec recommended in {stats.agreed} of {stats.with_choice} "
            f"{plural(stats.with_choice, 'consultation')} with a choice ({share}%)"
        )
    else:
        lines.append("Nobody has recorded what the team chose yet.")
    return lines


def _distribution(counts: Mapping[MaterialClass, int]) -> str:
    return " · ".join(f"{PROFILES[c].label} {counts[c]}" for c in CLASS_ORDER if counts.get(c))


def plural(count: int, noun: str) -> str:
    """`noun`, with an s unless there is exactly one."""
    return noun if count == 1 else noun + "s"
