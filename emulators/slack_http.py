"""HTTP-mode delivery: POST a body to the app's request URL, signed as Slack signs it."""

from __future__ import annotations

import json
import time
from typing import NamedTuple

import aiohttp
from slack_sdk.signature import SignatureVerifier

from emulators.slack_identity import JsonDict

STALE_AFTER_S = 5 * 60  # Slack's (and SignatureVerifier's) replay window
SLACK_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
DELIVERY_TIMEOUT_S = 10.0


class HttpDelivery(NamedTuple):
    """What the app answered to one signed POST (unpacks as `status, text`)."""

    status: int
    text: str


def signature(signing_secret: str, timestamp: str, body: str) -> str:
    """`v0=<hex hmac-sha256>` of `v0:{timestamp}:{body}`, computed by slack_sdk's own verifier."""
    computed = SignatureVerifier(signing_secret).generate_signature(timestamp=timestamp, body=body)
    assert computed is not None  # only None without a timestamp
    return computed


async def post_signed(
    url: str,
    body: JsonDict | str,
    *,
    signing_secret: str,
    timestamp: int | None = None,
    sign: bool = True,
    signature_override: str | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
    content_type: str = "application/json",
) -> HttpDelivery:
    """POST `body` (JSON-encoded if a dict) with Slack's signature headers; returns status and text."""
    raw = json.dumps(body) if isinstance(body, dict) else body
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": content_type, "User-Agent": SLACK_USER_AGENT}
    if sign:
        headers["X-Slack-Request-Timestamp"] = stamp
        headers["X-Slack-Signature"] = signature_override or signature(signing_secret, stamp, raw)
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=raw.encode(), headers=headers) as response,
    ):
        return HttpDelivery(response.status, await response.text())


def url_verification_body(challenge: str, verification_token: str) -> JsonDict:
    """The body Slack posts when a request URL is saved in the app config."""
    return {"token": verification_token, "challenge": challenge, "type": "url_verification"}
