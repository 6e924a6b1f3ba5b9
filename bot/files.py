"""Slack file downloads: the bot token goes only to Slack's own hosts, and only images come back.

`FileFetcher.fetch` raises `FileRejected`, whose `reason` says why and whose message is written for
the person who uploaded the file:

    not_an_image     the bytes are not JPEG, PNG, GIF, WebP or HEIC/HEIF (a PDF, a text file...)
    too_large        Slack's `size` field, the Content-Length header or the body itself passes max_bytes
    login_page       an HTML page came back instead of the file: Slack's sign-in page, which it sends
                     with HTTP 200 when the token is missing, wrong or lacks the files:read scope
    download_failed  an HTTP error, a timeout, a connection error, too many redirects, or a redirect
                     this module will not follow
    not_found        files.info could not complete a Slack Connect stub (deleted, or not shared with us)
    unsupported      the file's URL is not on a Slack file host (e.g. an external Google Drive file)

Redirect policy. Redirects are followed by hand (at most `max_redirects` hops) so that the decision
to send the token is made afresh for every URL:

- The first URL must be trusted, or nothing is requested: a file object naming another host is
  refused as "unsupported" (without the token it would only fetch a sign-in page; with it, leak it).
- A hop to a trusted URL carries `Authorization: Bearer <token>` (Enterprise Grid sends
  files.slack.com -> files-origin.slack.com, and the token must survive that).
- A hop to an untrusted host is followed WITHOUT the token, as a signed CDN URL needs none; it is
  refused when it would go from https to plain http, or names a user or password (aiohttp would
  send them as Basic credentials).

Trusted means: https on port 443 to a host that is, or ends in "." plus, one of
SLACK_FILE_DOMAINS; or exactly the scheme, host and port of the configured `api_url` (a
Slack-compatible endpoint, or the loopback emulator in tests). Hostnames are compared after
parsing, with the same parser (yarl) aiohttp connects with, so lookalikes and userinfo tricks fail.
The session passed in must not carry default Authorization headers of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Literal

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from matrec.images import ACCEPTED_FORMATS_TEXT, BYTES_PER_MB, sniff_format

logger = logging.getLogger(__name__)

# Slack's own domains: files.slack.com, files-origin.slack.com, files-edu.slack.com, files-gov.slack.com
# and workspace hosts under slack.com; static and CDN hosts under slack-edge.com; public file links on
# slack-files.com; GovSlack under slack-gov.com. Each entry also covers its subdomains.
SLACK_FILE_DOMAINS: Final = ("slack.com", "slack-edge.com", "slack-files.com", "slack-gov.com")
SLACK_FILE_SCHEME: Final = "https"
SLACK_FILE_PORT: Final = 443
DOWNLOAD_TIMEOUT_S: Final = 30.0  # the whole download, every redirect hop included
READ_CHUNK_BYTES: Final = 64 * 1024
DEFAULT_MAX_REDIRECTS: Final = 3
IMAGE_FILETYPES: Final = frozenset({"jpg", "jpeg", "png", "gif", "webp", "heic", "heif"})
STUB_FILE_ACCESS: Final = "check_file_info"  # Slack Connect: the event holds a stub, files.info the rest

_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_WEB_SCHEMES: Final = frozenset({"http", "https"})
_HTML_STARTS: Final = (b"<!doctype html", b"<html")
_HTML_SNIFF_BYTES: Final = 512

Reason = Literal["not_an_image", "too_large", "login_page", "download_failed", "not_found", "unsupported"]


class FileRejected(Exception):
    """A file that cannot be analysed; `str(error)` is a plain message for the person who uploaded it."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@dataclass(frozen=True)
class SlackFile:
    """What the bot needs to know about one file of a message event."""

    id: str
    name: str
    mimetype: str
    filetype: str
    size: int | None
    url: str | None
    is_stub: bool

    @classmethod
    def from_event(cls, raw: Mapping[str, Any]) -> SlackFile:
        """The file described by a Slack file object (from a message event or files.info)."""
        file_id = raw.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise ValueError("a Slack file object without an id")
        url = _text(raw, "url_private_download") or _text(raw, "url_private") or None
        size = raw.get("size")
        return cls(
            id=file_id,
            name=_text(raw, "name") or _text(raw, "title"),
            mimetype=_text(raw, "mimetype").lower(),
            filetype=_text(raw, "filetype").lower(),
            size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            url=url,
            is_stub=raw.get("file_access") == STUB_FILE_ACCESS or url is None,
        )

    @property
    def looks_like_image(self) -> bool:
        """True if the type says image, or (for a stub) nothing says otherwise yet; no download needed."""
        if self.mimetype.startswith("image/") or self.filetype in IMAGE_FILETYPES:
            return True
        return self.is_stub and not self.mimetype and not self.filetype


def is_trusted_file_url(url: str | URL, *, api_url: str) -> bool:
    """True if `url` may receive the bot token: a Slack file host over https, or `api_url`'s origin."""
    try:
        target = URL(url) if isinstance(url, str) else url
        api = URL(api_url)
    except ValueError:
        return False
    if target.user is not None or target.password is not None or not target.host:
        return False
    if target.scheme in _WEB_SCHEMES and (target.scheme, target.host, target.port) == (
        api.scheme,
        api.host,
        api.port,
    ):
        return True
    host = target.host
    return (
        target.scheme == SLACK_FILE_SCHEME
        and target.port == SLACK_FILE_PORT
        and any(host == domain or host.endswith("." + domain) for domain in SLACK_FILE_DOMAINS)
    )


class FileFetcher:
    """Downloads Slack files with the bot token, sending it only to Slack's own file hosts."""

    def __init__(
        self,
        client: AsyncWebClient,
        session: aiohttp.ClientSession,
        *,
        token: str,
        api_url: str,
        max_bytes: int,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        timeout_s: float = DOWNLOAD_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._session = session
        self._token = token
        self._api_url = api_url
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"FileFetcher(api_url={self._api_url!r}, max_bytes={self._max_bytes})"  # never the token

    def trusts(self, url: str | URL) -> bool:
        """True if this fetcher would send the bot token to `url`."""
        return is_trusted_file_url(url, api_url=self._api_url)

    async def resolve(self, file: SlackFile) -> SlackFile:
        """The full file for a Slack Connect stub (via files.info); any other file unchanged."""
        if not file.is_stub:
            return file
        try:
            answer = await self._client.files_info(file=file.id)
        except SlackApiError:
            raise _rejected(
                file,
                "not_found",
                f"I couldn't get {_object(file)} from Slack: it may have been deleted, or it comes from "
                "another organisation that does not share its files with this app.",
            ) from None
        except (aiohttp.ClientError, TimeoutError):
            raise _rejected(
                file,
                "download_failed",
                f"I couldn't reach Slack to look up {_object(file)}; please try again.",
            ) from None
        raw = answer.get("file")
        resolved = SlackFile.from_event(raw) if isinstance(raw, Mapping) and raw.get("id") else None
        if resolved is None or resolved.url is None:
            raise _rejected(file, "not_found", f"Slack gave me no way to download {_object(file)}.")
        return dataclasses.replace(resolved, is_stub=False)

    async def fetch(self, file: SlackFile) -> bytes:
        """The file's bytes, resolving a stub first; raises FileRejected unless they look like an image."""
        file = await self.resolve(file)
        if file.size is not None and file.size > self._max_bytes:
            raise self._too_large(file, file.size)
        url = self._first_url(file)
        try:
            async with asyncio.timeout(self._timeout_s):
                data = await self._follow(file, url)
        except TimeoutError:  # before ClientError: aiohttp's timeouts are both
            raise _rejected(
                file,
                "download_failed",
                f"Downloading {_object(file)} took longer than {self._timeout_s:g} s; please try again.",
            ) from None
        except aiohttp.ClientError:
            raise _rejected(
                file,
                "download_failed",
                f"I couldn't download {_object(file)}: the connection to Slack failed. Please try again.",
            ) from None
        if _is_html(data):
            raise _login_page(file)
        if sniff_format(data) is None:
            raise _rejected(
                file,
                "not_an_image",
                f"{_subject(file)} is not an image I can analyse; send a photo as {ACCEPTED_FORMATS_TEXT}.",
            )
        return data

    def _first_url(self, file: SlackFile) -> URL:
        try:
            url = URL(file.url or "")
        except ValueError:
            url = None
        if url is None or not self.trusts(url):
            raise _rejected(
                file,
                "unsupported",
                f"{_subject(file)} is stored outside Slack, so I can't download it; "
                "please upload the photo itself to Slack.",
            )
        return url

    async def _follow(self, file: SlackFile, url: URL) -> bytes:
        """GET `url`, following up to max_redirects redirects by hand; the token only where trusted."""
        for hop in range(self._max_redirects + 1):
            trusted = self.trusts(url)
            logger.debug("file %s: request %d, token %s", file.id, hop + 1, "sent" if trusted else "withheld")
            headers = {"Authorization": f"Bearer {self._token}"} if trusted else {}
            async with self._session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status in _REDIRECT_STATUSES:
                    url = self._next_hop(file, url, response.headers.get("Location"))
                    continue
                return await self._body(file, response)
        raise _rejected(
            file,
            "download_failed",
            f"I couldn't download {_object(file)}: Slack redirected more than {self._max_redirects} times.",
        )

    def _next_hop(self, file: SlackFile, current: URL, location: str | None) -> URL:
        target: URL | None = None
        try:
            target = current.join(URL(location or ""))  # a relative Location resolves against the current
        except ValueError:
            target = None
        if target is None or not location or not _followable(current, target):
            raise _rejected(
                file,
                "download_failed",
                f"I couldn't download {_object(file)}: Slack redirected it somewhere I won't follow.",
            )
        return target

    async def _body(self, file: SlackFile, response: aiohttp.ClientResponse) -> bytes:
        """The body of a final answer, read in chunks and never past max_bytes plus one chunk."""
        if response.status != HTTPStatus.OK:
            raise _rejected(
                file,
                "download_failed",
                f"I couldn't download {_object(file)}: Slack answered HTTP {response.status}"
                f"{_status_phrase(response.status)}. Please try uploading it again.",
            )
        if response.content_type == "text/html":
            raise _login_page(file)
        declared = response.content_length
        if declared is not None and declared > self._max_bytes:
            raise self._too_large(file, declared)
        data = bytearray()
        async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
            data += chunk
            if len(data) > self._max_bytes:
                response.close()  # stop the transfer: the rest is never read
                raise self._too_large(file, None)
        return bytes(data)

    def _too_large(self, file: SlackFile, size: int | None) -> FileRejected:
        limit = _size_text(self._max_bytes)
        if size is None:
            return _rejected(file, "too_large", f"{_subject(file)} is over the {limit} limit.")
        return _rejected(
            file, "too_large", f"{_subject(file)} is {_size_text(size, round_up=True)}; the limit is {limit}."
        )


def _rejected(file: SlackFile, reason: Reason, message: str) -> FileRejected:
    logger.info("file %s rejected: %s", file.id, reason)
    return FileRejected(reason, message)


def _login_page(file: SlackFile) -> FileRejected:
    return _rejected(
        file,
        "login_page",
        f"Slack sent a sign-in page instead of {_object(file)}, so I couldn't download it. The app may be "
        "missing the files:read scope: an admin can add it and then reinstall the app.",
    )


def _followable(current: URL, target: URL) -> bool:
    """A web URL with a host, no credentials, and no step down from https to http."""
    downgrade = current.scheme == "https" and target.scheme == "http"
    credentials = target.user is not None or target.password is not None
    return target.scheme in _WEB_SCHEMES and bool(target.host) and not downgrade and not credentials


def _is_html(data: bytes) -> bool:
    head = data[:_HTML_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(_HTML_STARTS)


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else ""


def _subject(file: SlackFile) -> str:
    return file.name or "Your file"


def _object(file: SlackFile) -> str:
    return file.name or "your file"


def _status_phrase(status: int) -> str:
    try:
        return f" ({HTTPStatus(status).phrase})"
    except ValueError:
        return ""


def _size_text(byte_count: int, *, round_up: bool = False) -> str:
    """'31.2 MB', or '2,000 bytes' below a tenth of a MB; rounded up, a size over a limit never equals it."""
    if byte_count < BYTES_PER_MB // 10:
        return f"{byte_count:,} bytes"
    tenths = math.ceil(byte_count * 10 / BYTES_PER_MB) if round_up else round(byte_count * 10 / BYTES_PER_MB)
    return f"{tenths / 10:.1f}".removesuffix(".0") + " MB"
