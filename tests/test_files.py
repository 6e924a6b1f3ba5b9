"""Slack file downloads against the loopback Slack: the token stays on Slack, only images come back."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from bot.files import FileFetcher, FileRejected, SlackFile, is_trusted_file_url
from emulators.slack import ForeignHost, LoopbackServer, SlackEmulator
from emulators.slack_identity import DEFAULT_BOT_SCOPES

CAP_BYTES = 1_000_000
ENDLESS_LIMIT_BYTES = 256 * 1024 * 1024  # what the endless host would send if nobody stopped reading
SOCKET_SLACK_BYTES = 32 * 1024 * 1024  # generous room for kernel buffers between the two ends
STREAM_CHUNK_BYTES = 64 * 1024
WAIT_S = 5.0


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 130, 140)).save(buffer, "JPEG")
    return buffer.getvalue()


JPEG = jpeg_bytes()


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_fetcher(
    slack: SlackEmulator, http: aiohttp.ClientSession, *, api_url: str | None = None, **options: Any
) -> FileFetcher:
    """A fetcher wired to the emulator as the bot wires it to Slack; `options` override the defaults."""
    settings: dict[str, Any] = {"token": slack.bot_token, "max_bytes": CAP_BYTES, **options}
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    return FileFetcher(client, http, api_url=api_url or slack.api_url, **settings)


@pytest.fixture
def fetcher(slack: SlackEmulator, http: aiohttp.ClientSession) -> FileFetcher:
    return make_fetcher(slack, http)


async def rejection(download: Awaitable[object], *secrets: str) -> FileRejected:
    """The FileRejected a download raises, checked to carry no secret, private URL or chained error."""
    with pytest.raises(FileRejected) as raised:
        await download
    error = raised.value
    for secret in secrets:
        assert secret not in str(error)
        assert secret not in repr(error)
    assert "/files-pri/" not in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None
    return error


class OddHost:
    """A Slack-compatible file host that misbehaves: an endless body with no length, or no answer."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_get("/endless/{name}", self._endless)
        app.router.add_get("/stall/{name}", self._stall)
        self.server = LoopbackServer(app)
        self.sent_bytes = 0
        self.endless_done = asyncio.Event()
        self.release = asyncio.Event()

    def url(self, path: str) -> str:
        return f"{self.server.base_url}{path}"

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = JPEG[:4] + b"\x00" * (STREAM_CHUNK_BYTES - 4)
        try:
            while self.sent_bytes < ENDLESS_LIMIT_BYTES:
                await response.write(chunk)
                self.sent_bytes += len(chunk)
        except ConnectionError:
            pass  # the client hung up: what a capped download should do
        finally:
            self.endless_done.set()
        return response

    async def _stall(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(body=JPEG, content_type="image/jpeg")


@pytest.fixture
async def odd_host() -> AsyncIterator[OddHost]:
    host = OddHost()
    await host.server.start()
    yield host
    host.release.set()
    await host.server.stop()


def file_at(url: str, name: str = "part.jpg", size: int | None = None) -> SlackFile:
    return SlackFile(id="F0ODD", name=name, mimetype="image/jpeg", filetype="jpg", size=size, url=url, is_stub=False)


# --- downloads and redirects ----------------------------------------------------------------------


async def test_a_jpeg_downloads_with_the_bot_token_and_arrives_intact(
    slack: SlackEmulator, fetcher: FileFetcher
) -> None:
    file = SlackFile.from_event(slack.add_file(JPEG, "part.jpg", "image/jpeg", "jpg"))
    assert await fetcher.fetch(file) == JPEG
    assert [(d.had_token, d.token_valid, d.status) for d in slack.downloads] == [(True, True, 200)]


async def test_a_redirect_to_another_slack_file_url_keeps_the_token(slack: SlackEmulator, fetcher: FileFetcher) -> None:
    origin = slack.add_file(JPEG, "origin.jpg", "image/jpeg", "jpg")
    moved = slack.add_file(b"", "part.jpg", "image/jpeg", "jpg", redirect_to=origin["url_private_download"])
    assert await fetcher.fetch(SlackFile.from_event(moved)) == JPEG
    assert [(d.file_id, d.had_token, d.status) for d in slack.downloads] == [
        (moved["id"], True, 302),
        (origin["id"], True, 200),
    ]


async def test_a_relative_redirect_resolves_against_the_current_url(slack: SlackEmulator, fetcher: FileFetcher) -> None:
    origin = slack.add_file(JPEG, "origin.jpg", "image/jpeg", "jpg")
    relative = str(URL(origin["url_private_download"]).relative())
    moved = slack.add_file(b"", "part.jpg", "image/jpeg", "jpg", redirect_to=relative)
    assert await fetcher.fetch(SlackFile.from_event(moved)) == JPEG
    assert slack.downloads[-1].file_id == origin["id"]
    assert slack.downloads[-1].token_valid


async def test_a_redirect_off_slack_is_followed_without_the_token(slack: SlackEmulator, fetcher: FileFetcher) -> None:
    async with ForeignHost(JPEG, "image/jpeg", host="127.0.0.2") as cdn:
        signed = cdn.url("/signed/part.jpg?signature=abc")
        moved = slack.add_file(b"", "part.jpg", "image/jpeg", "jpg", redirect_to=signed)
        assert await fetcher.fetch(SlackFile.from_event(moved)) == JPEG
    assert [(r.path, r.carried_token) for r in cdn.requests] == [("/signed/part.jpg?signature=abc", False)]
    assert not cdn.received_token
    assert slack.downloads[0].had_token


async def test_a_redirect_carrying_credentials_is_refused_before_any_request(
    slack: SlackEmulator, fetcher: FileFetcher
) -> None:
    async with ForeignHost(JPEG, "image/jpeg", host="127.0.0.2") as elsewhere:
        with_credentials = elsewhere.url("/part.jpg").replace("http://", "http://user:pass@")
        moved = slack.add_file(b"", "part.jpg", "image/jpeg", "jpg", redirect_to=with_credentials)
        error = await rejection(fetcher.fetch(SlackFile.from_event(moved)), slack.bot_token)
    assert error.reason == "download_failed"
    assert "part.jpg" in str(error)
    assert elsewhere.requests == []


async def test_a_file_url_off_slack_is_refused_without_any_request(fetcher: FileFetcher) -> None:
    async with ForeignHost(JPEG, "image/jpeg", host="127.0.0.2") as elsewhere:
        error = await rejection(fetcher.fetch(file_at(elsewhere.url("/part.jpg"))))
    assert error.reason == "unsupported"
    assert str(error).startswith("part.jpg is stored outside Slack")
    assert elsewhere.requests == []


def redirect_chain(slack: SlackEmulator, hops: int) -> SlackFile:
    """A file that reaches its bytes after exactly `hops` redirects, each to another Slack file URL."""
    target = slack.add_file(JPEG, "origin.jpg", "image/jpeg", "jpg")
    for _ in range(hops):
        target = slack.add_file(b"", "part.jpg", "image/jpeg", "jpg", redirect_to=target["url_private_download"])
    return SlackFile.from_event(target)


async def test_more_redirects_than_allowed_fail_the_download(slack: SlackEmulator, http: aiohttp.ClientSession) -> None:
    fetcher = make_fetcher(slack, http, max_redirects=3)
    error = await rejection(fetcher.fetch(redirect_chain(slack, hops=4)), slack.bot_token)
    assert error.reason == "download_failed"
    assert str(error) == "I couldn't download part.jpg: Slack redirected more than 3 times."
    assert len(slack.downloads) == 4  # the first request and three hops; the fourth hop is not taken


async def test_exactly_the_allowed_number_of_redirects_still_downloads(
    slack: SlackEmulator, http: aiohttp.ClientSession
) -> None:
    fetcher = make_fetcher(slack, http, max_redirects=3)
    assert await fetcher.fetch(redirect_chain(slack, hops=3)) == JPEG
    assert all(d.token_valid for d in slack.downloads)


# --- Slack Connect stubs --------------------------------------------------------------------------


async def test_a_slack_connect_stub_resolves_via_files_info_then_downloads(
    slack: SlackEmulator, fetcher: FileFetcher
) -> None:
    stub = SlackFile.from_event(slack.add_file(JPEG, "part.jpg", "image/jpeg", "jpg", connect_stub=True))
    assert (stub.is_stub, stub.url, stub.looks_like_image) == (True, None, True)
    resolved = await fetcher.resolve(stub)
    assert (resolved.id, resolved.name, resolved.mimetype, resolved.size) == (
        stub.id,
        "part.jpg",
        "image/jpeg",
        len(JPEG),
    )
    assert not resolved.is_stub
    assert await fetcher.fetch(resolved) == JPEG
    assert len(slack.calls_to("files.info")) == 1


async def test_fetching_a_stub_resolves_it_first(slack: SlackEmulator, fetcher: FileFetcher) -> None:
    stub = SlackFile.from_event(slack.add_file(JPEG, "part.jpg", "image/jpeg", "jpg", connect_stub=True))
    assert await fetcher.fetch(stub) == JPEG
    assert [c.params["file"] for c in slack.calls_to("files.info")] == [stub.id]


async def test_a_stub_that_files_info_cannot_find_is_not_found(slack: SlackEmulator, fetcher: FileFetcher) -> None:
    stub = SlackFile.from_event({"id": "FNOPE", "file_access": "check_file_info"})
    error = await rejection(fetcher.resolve(stub), slack.bot_token)
    assert error.reason == "not_found"
    assert slack.downloads == []


# --- size limits ----------------------------------------------------------------------------------


async def test_a_file_whose_size_field_exceeds_the_cap_is_rejected_without_a_download(
    slack: SlackEmulator, http: aiohttp.ClientSession
) -> None:
    raw = {**slack.add_file(JPEG, "part.jpg", "image/jpeg", "jpg"), "size": 31_200_000}
    fetcher = make_fetcher(slack, http, max_bytes=25_000_000)
    error = await rejection(fetcher.fetch(SlackFile.from_event(raw)), slack.bot_token)
    assert error.reason == "too_large"
    assert str(error) == "part.jpg is 31.2 MB; the limit is 25 MB."
    assert slack.downloads == []


async def test_a_lying_size_field_is_caught_by_content_length(
    slack: SlackEmulator, http: aiohttp.ClientSession
) -> None:
    big = JPEG + b"\x00" * 5000
    raw = {**slack.add_file(big, "part.jpg", "image/jpeg", "jpg"), "size": 10}
    fetcher = make_fetcher(slack, http, max_bytes=2000)
    error = await rejection(fetcher.fetch(SlackFile.from_event(raw)), slack.bot_token)
    assert error.reason == "too_large"
    assert str(error) == f"part.jpg is {len(big):,} bytes; the limit is 2,000 bytes."


async def test_a_body_without_a_length_is_cut_off_once_it_passes_the_cap(
    slack: SlackEmulator, http: aiohttp.ClientSession, odd_host: OddHost
) -> None:
    fetcher = make_fetcher(slack, http, api_url=odd_host.url("/api/"))
    error = await rejection(fetcher.fetch(file_at(odd_host.url("/endless/big.jpg"), name="big.jpg")))
    await asyncio.wait_for(odd_host.endless_done.wait(), WAIT_S)
    assert error.reason == "too_large"
    assert str(error) == "big.jpg is over the 1 MB limit."
    assert odd_host.sent_bytes < CAP_BYTES + SOCKET_SLACK_BYTES < ENDLESS_LIMIT_BYTES


# --- what comes back is not an image --------------------------------------------------------------


@pytest.mark.parametrize("scopes", [DEFAULT_BOT_SCOPES, DEFAULT_BOT_SCOPES - {"files:read"}])
async def test_a_sign_in_page_instead_of_the_file_is_a_login_page(
    http: aiohttp.ClientSession, scopes: frozenset[str]
) -> None:
    async with SlackEmulator(scopes=scopes) as slack:
        file = SlackFile.from_event(slack.add_file(JPEG, "part.jpg", "image/jpeg", "jpg"))
        wrong = "xoxb-wrong-token" if "files:read" in scopes else slack.bot_token
        fetcher = make_fetcher(slack, http, token=wrong)
        error = await rejection(fetcher.fetch(file), slack.bot_token, wrong)
        assert [(d.had_token, d.token_valid) for d in slack.downloads] == [(True, False)]
    assert error.reason == "login_page"
    assert "part.jpg" in str(error)
    assert "sign-in page" in str(error)
    assert "files:read" in str(error)
    assert "reinstall" in str(error)


async def test_html_bytes_labelled_as_an_image_are_a_login_page(slack: SlackEmulator, fetcher: FileFetcher) -> None:
    page = b"\r\n  <!DOCTYPE html>\n<html><body>Sign in</body></html>"
    file = SlackFile.from_event(slack.add_file(page, "part.jpg", "image/jpeg", "jpg"))
    error = await rejection(fetcher.fetch(file), slack.bot_token)
    assert error.reason == "login_page"


@pytest.mark.parametrize(
    ("content", "name", "mimetype", "filetype"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "notes.pdf", "application/pdf", "pdf"),
        (b"Steel or aluminium for the bracket?\n", "notes.txt", "text/plain", "text"),
    ],
)
async def test_a_document_is_not_an_image(
    slack: SlackEmulator, fetcher: FileFetcher, content: bytes, name: str, mimetype: str, filetype: str
) -> None:
    file = SlackFile.from_event(slack.add_file(content, name, mimetype, filetype))
    assert not file.looks_like_image
    error = await rejection(fetcher.fetch(file), slack.bot_token)
    assert error.reason == "not_an_image"
    assert str(error) == (f"{name} is not an image I can analyse; send a photo as JPEG, PNG, GIF, WebP or HEIC/HEIF.")


# --- failures on the way --------------------------------------------------------------------------


async def test_a_missing_file_is_a_failed_download(slack: SlackEmulator, fetcher: FileFetcher) -> None:
    raw = slack.add_file(JPEG, "part.jpg", "image/jpeg", "jpg")
    del slack.files.files[raw["id"]]  # deleted after the event was sent: Slack answers 404
    error = await rejection(fetcher.fetch(SlackFile.from_event(raw)), slack.bot_token)
    assert error.reason == "download_failed"
    assert str(error) == (
        "I couldn't download part.jpg: Slack answered HTTP 404 (Not Found). Please try uploading it again."
    )


async def test_a_host_that_never_answers_times_out(
    slack: SlackEmulator, http: aiohttp.ClientSession, odd_host: OddHost
) -> None:
    fetcher = make_fetcher(slack, http, api_url=odd_host.url("/api/"), timeout_s=0.2)
    error = await rejection(fetcher.fetch(file_at(odd_host.url("/stall/part.jpg"))), slack.bot_token)
    assert error.reason == "download_failed"
    assert str(error) == "Downloading part.jpg took longer than 0.2 s; please try again."


async def test_a_refused_connection_is_a_failed_download(slack: SlackEmulator, http: aiohttp.ClientSession) -> None:
    gone = LoopbackServer(web.Application())
    base = await gone.start()
    await gone.stop()
    fetcher = make_fetcher(slack, http, api_url=f"{base}/api/")
    error = await rejection(fetcher.fetch(file_at(f"{base}/files-pri/T-F/part.jpg")), slack.bot_token)
    assert error.reason == "download_failed"
    assert "part.jpg" in str(error)


async def test_logs_name_file_ids_but_never_the_token_or_the_url(
    slack: SlackEmulator, fetcher: FileFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    good = slack.add_file(JPEG, "part.jpg", "image/jpeg", "jpg")
    bad = slack.add_file(b"plain text", "notes.txt", "text/plain", "text")
    with caplog.at_level(logging.DEBUG, logger="bot.files"):
        await fetcher.fetch(SlackFile.from_event(good))
        await rejection(fetcher.fetch(SlackFile.from_event(bad)), slack.bot_token)
    assert bad["id"] in caplog.text
    assert slack.bot_token not in caplog.text
    assert "files-pri" not in caplog.text
    assert slack.bot_token not in repr(fetcher)


# --- host trust and file facts --------------------------------------------------------------------

API_URL = "http://127.0.0.1:5555/api/"


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://files.slack.com/files-pri/T1-F1/download/part.jpg", True),
        ("https://files-origin.slack.com/files-pri/T1-F1/part.jpg", True),
        ("https://files-edu.slack.com/files-pri/T1-F1/part.jpg", True),
        ("https://files-gov.slack.com/files-pri/T1-F1/part.jpg", True),
        ("https://acme.enterprise.slack.com/files/U1/F1/part.jpg", True),
        ("https://slack.com/files/U1/F1/part.jpg", True),
        ("https://a.slack-edge.com/part.jpg", True),
        ("https://slack-files.com/T1-F1-0123456789", True),
        ("https://FILES.Slack.COM/files-pri/T1-F1/part.jpg", True),
        ("https://files.slack.com:443/files-pri/T1-F1/part.jpg", True),
        ("http://127.0.0.1:5555/files-pri/T1-F1/part.jpg", True),  # exactly the api_url origin
        ("http://files.slack.com/files-pri/T1-F1/part.jpg", False),  # Slack's hosts only over https
        ("http://slack.com/files/U1/F1/part.jpg", False),
        ("https://files.slack.com:8443/part.jpg", False),
        ("https://files.slack.com.evil.com/part.jpg", False),
        ("https://slack.com.evil.com/part.jpg", False),
        ("https://evilslack.com/part.jpg", False),
        ("https://evil-slack-edge.com/part.jpg", False),
        ("https://files.slack.com@evil.com/part.jpg", False),  # userinfo: the host is evil.com
        ("https://evil.com@files.slack.com/part.jpg", False),  # credentials never ride with the token
        ("https://files.slack.com./part.jpg", False),  # a trailing dot fails closed
        ("//files.slack.com/part.jpg", False),
        ("ftp://files.slack.com/part.jpg", False),
        ("http://127.0.0.1:5556/files-pri/T1-F1/part.jpg", False),  # another port
        ("https://127.0.0.1:5555/files-pri/T1-F1/part.jpg", False),  # another scheme
        ("http://127.0.0.2:5555/files-pri/T1-F1/part.jpg", False),  # another host
        ("http://localhost:5555/files-pri/T1-F1/part.jpg", False),  # another name for it, not the same
        ("https://evil.com\\@files.slack.com/part.jpg", False),
        ("not a url", False),
    ],
)
def test_only_slack_file_hosts_and_the_api_origin_are_trusted_with_the_token(url: str, trusted: bool) -> None:
    assert is_trusted_file_url(url, api_url=API_URL) is trusted


@pytest.mark.parametrize(
    ("raw", "looks_like_image"),
    [
        ({"mimetype": "image/jpeg", "filetype": "jpg"}, True),
        ({"mimetype": "image/heic", "filetype": "heic"}, True),
        ({"mimetype": "application/octet-stream", "filetype": "heif"}, True),
        ({"mimetype": "", "filetype": "webp"}, True),
        ({"mimetype": "application/pdf", "filetype": "pdf"}, False),
        ({"mimetype": "text/plain", "filetype": "text"}, False),
        ({"mimetype": "video/quicktime", "filetype": "mov"}, False),
        ({"file_access": "check_file_info"}, True),  # a stub: unknown until files.info says
    ],
)
def test_the_type_says_whether_a_file_is_worth_downloading(raw: dict[str, str], looks_like_image: bool) -> None:
    url = {} if "file_access" in raw else {"url_private_download": "https://files.slack.com/x"}
    assert SlackFile.from_event({"id": "F1", **raw, **url}).looks_like_image is looks_like_image


def test_a_file_object_becomes_a_slack_file_preferring_the_download_url() -> None:
    file = SlackFile.from_event(
        {
            "id": "F1",
            "name": "part.HEIC",
            "mimetype": "image/HEIC",
            "filetype": "heic",
            "size": 4_200_000,
            "url_private": "https://files.slack.com/files-pri/T1-F1/part.HEIC",
            "url_private_download": "https://files.slack.com/files-pri/T1-F1/download/part.HEIC",
            "file_access": "visible",
        }
    )
    assert file == SlackFile(
        id="F1",
        name="part.HEIC",
        mimetype="image/heic",
        filetype="heic",
        size=4_200_000,
        url="https://files.slack.com/files-pri/T1-F1/download/part.HEIC",
        is_stub=False,
    )
