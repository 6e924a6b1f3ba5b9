"""Conversation in a consultation's thread: follow-up questions, small talk, mute, "re-run".

reply.py      ThreadReply: a person's message in a thread, as the listener hands it over
intent.py     what a reply asks: small talk, mute, unmute, re-run, a teammate's business, a question
followups.py  FollowUps: routes replies in consultation threads (consider)
answer.py     Answerer: one question answered by Claude with the consultation's context, streamed
"""

from bot.conversation.reply import ThreadReply

__all__ = ["ThreadReply"]
