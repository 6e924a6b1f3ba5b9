"""File hosting like files.slack.com: private URLs that need the bot token, uploads, file objects."""

from __future__ import annotations

import mimetypes
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from aiohttp import web

from emulators.slack_errors import ApiError
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_signal import StateSignal
from emulators.slack_workspace import ChannelType

# What files.slack.com answers a request without a valid token: a 200 HTML sign-in page.
LOGIN_PAGE_HTML = """<!DOCTYPE html>
<html lang="en-US" class="supports_custom_scrollbar">
<head><meta charset="utf-8"><title>Slack</title>
<meta name="referrer" content="no-referrer"><link rel="canonical" href="https://slack.com/signin"></head>
<body class="signin">
<div id="page"><div id="page_contents">
<h1>Sign in to {domain}</h1>
<p>Enter your workspace's Slack URL, or sign in with Google or Apple.</p>
<form id="signin_form" action="/" method="post">
<input type="email" name="email" placeholder="name@work-email.com">
<button type="submit" id="signin_btn">Sign In</button></form>
</div></div>
</body>
</html>
"""


@dataclass
class HostedFile:
    """A file the emulator hosts, with the options that shape how it is served."""

    id: str
    name: str
    title: str
    mimetype: str
    filetype: str
    content: bytes
    user: str
    created: int
    channels: dict[str, ChannelType] = field(default_factory=dict)
    redirect_to: str | None = None
    connect_stub: bool = False
    alt_txt: str | None = None
    shares: dict[str, dict[str, list[JsonDict]]] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadedFile:
    """A file the app uploaded (files upload v2) and where it shared it (`channel` None: not shared)."""

    id: str
    name: str
    title: str
    alt_txt: str | None
    content: bytes
    channel: str | None
    thread_ts: str | None
    message_ts: str | None
    initial_comment: str | None


@dataclass(frozen=True)
class FileDownload:
    """One GET of a private file URL: host, whether a (valid) token came, the answer, `at` (monotonic s)."""

    file_id: str | None
    path: str
    host: str
    had_token: bool
    token_valid: bool
    status: int
    redirected_to: str | None
    at: float


class FileHost:
    """Registers files, builds Slack file objects, serves `/files-pri/...` and upload URLs."""

    def __init__(self, identity: AppIdentity, signal: StateSignal, base_url: Callable[[], str]) -> None:
        self.identity = identity
        self.signal = signal
        self._base_url = base_url
        self.files: dict[str, HostedFile] = {}
        self.downloads: list[FileDownload] = []
        self.uploads: list[UploadedFile] = []
        self._pending_uploads: dict[str, str] = {}  # upload ticket -> file id

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes this host serves."""
        return [
            web.get("/files-pri/{team_file}/download/{name}", self._download),
            web.get("/files-pri/{team_file}/{name}", self._download),
            web.post("/upload/v1/{ticket}", self._receive_upload),
        ]

    def add(self, hosted: HostedFile) -> JsonDict:
        """Register a file; returns the object a message event carries (a stub for Slack Connect)."""
        self.files[hosted.id] = hosted
        self.signal.changed()
        return self.stub_object(hosted.id) if hosted.connect_stub else self.full_object(hosted.id)

    def new_id(self) -> str:
        """A fresh file id like F0123ABCDEF."""
        return "F" + secrets.token_hex(5).upper()

    def lookup(self, file_id: str) -> HostedFile:
        """The hosted file; ApiError file_not_found otherwise."""
        hosted = self.files.get(file_id)
        if hosted is None:
            raise ApiError("file_not_found")
        return hosted

    def stub_object(self, file_id: str) -> JsonDict:
        """The Slack Connect stub: no URLs, only a hint to call files.info."""
        return {
            "id": file_id,
            "mode": "file_access",
            "file_access": "check_file_info",
            "created": 0,
            "timestamp": 0,
            "user": "",
        }

    def full_object(self, file_id: str) -> JsonDict:
        """The complete file object, as files.info returns it."""
        f = self.lookup(file_id)
        team, base, name = self.identity.team_id, self._base_url(), quote(f.name, safe="")
        out: JsonDict = {
            "id": f.id,
            "created": f.created,
            "timestamp": f.created,
            "name": f.name,
            "title": f.title,
            "mimetype": f.mimetype,
            "filetype": f.filetype,
            "pretty_type": f.filetype.upper(),
            "user": f.user,
            "user_team": team,
            "editable": False,
            "size": len(f.content),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": bool(f.shares.get("public")),
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{base}/files-pri/{team}-{f.id}/{name}",
            "url_private_download": f"{base}/files-pri/{team}-{f.id}/download/{name}",
            "media_display_type": "unknown",
            "permalink": f"{self.identity.workspace_url}files/{f.user}/{f.id}/{name}",
            "permalink_public": f"https://slack-files.com/{team}-{f.id}-{f.id.lower()[:10]}",
            "has_rich_preview": False,
            "file_access": "visible",
            "channels": [c for c, kind in f.channels.items() if kind == "channel"],
            "groups": [c for c, kind in f.channels.items() if kind in ("group", "mpim")],
            "ims": [c for c, kind in f.channels.items() if kind == "im"],
            "comments_count": 0,
        }
        if f.alt_txt is not None:
            out["alt_txt"] = f.alt_txt
        if f.shares:
            out["shares"] = f.shares
        return out

    def record_share(
        self, file_id: str, *, channel: str, channel_type: ChannelType, ts: str, thread_ts: str | None
    ) -> None:
        """Note that a message at `ts` shared this file (shown in the object's `shares`)."""
        f = self.files.get(file_id)
        if f is None:
            return
        share: JsonDict = {
            "reply_users": [],
            "reply_users_count": 0,
            "reply_count": 0,
            "ts": ts,
            "team_id": self.identity.team_id,
            "share_user_id": f.user,
        }
        if thread_ts is not None:
            share["thread_ts"] = thread_ts
        visibility = "public" if channel_type == "channel" else "private"
        f.shares.setdefault(visibility, {}).setdefault(channel, []).append(share)
        f.channels[channel] = channel_type
        self.signal.changed()

    def begin_upload(self, filename: str, alt_txt: str | None, user: str) -> tuple[str, str]:
        """files.getUploadURLExternal: reserve a file id and an upload URL."""
        mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        filetype = filename.rsplit(".", 1)[-1].lower() if "." in filename else "binary"
        file_id, ticket = self.new_id(), secrets.token_urlsafe(16)
        self.files[file_id] = HostedFile(
            file_id, filename, filename, mimetype, filetype, b"", user, int(time.time()), alt_txt=alt_txt
        )
        self._pending_uploads[ticket] = file_id
        return file_id, f"{self._base_url()}/upload/v1/{ticket}"

    async def _receive_upload(self, request: web.Request) -> web.Response:
        file_id = self._pending_uploads.pop(request.match_info["ticket"], None)
        if file_id is None:
            return web.Response(status=404, text="invalid upload URL", content_type="text/plain")
        self.files[file_id].content = await request.read()
        self.signal.changed()
        return web.Response(text=f"OK - {len(self.files[file_id].content)}", content_type="text/plain")

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["team_file"].removeprefix(f"{self.identity.team_id}-")
        hosted = self.files.get(file_id)
        header = request.headers.get("Authorization")
        token_valid = header == f"Bearer {self.identity.bot_token}" and "files:read" in self.identity.scopes
        response: web.Response
        if not token_valid:
            page = LOGIN_PAGE_HTML.replace("{domain}", f"{self.identity.team_domain}.slack.com")
            response = web.Response(text=page, content_type="text/html")
        elif hosted is None:
            response = web.Response(
                status=404,
                text="<!DOCTYPE html><html><body>Not Found</body></html>",
                content_type="text/html",
            )
        elif hosted.redirect_to is not None:
            response = web.Response(status=302, headers={"Location": hosted.redirect_to})
        else:
            response = web.Response(body=hosted.content, content_type=hosted.mimetype)
            if "/download/" in request.path:
                response.headers["Content-Disposition"] = f'attachment; filename="{hosted.name}"'
        self.downloads.append(
            FileDownload(
                file_id if hosted else None,
                request.path,
                request.host,
                header is not None,
                token_valid,
                response.status,
                response.headers.get("Location"),
                time.monotonic(),
            )
        )
        self.signal.changed()
        return response
