"""Conversation in a consultation's thread: follow-up questions, small talk, mute, "re-run".

reply.py     ThreadReply: a person's message in a thread, as the listener hands it over
"""

from bot.conversation.reply import ThreadReply

__all__ = ["ThreadReply"]
