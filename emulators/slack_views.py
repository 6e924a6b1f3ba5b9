"""Views: the App Home tab (views.publish) and modals (views.open / views.update), with Slack's checks.

A home view is one per user and replaces the last; a modal needs a fresh trigger_id (see
slack_interactive.Triggers). Views hold at most 100 blocks; a modal needs a plain_text title of at
most 24 characters; a `hash` that no longer matches the stored view is `hash_conflict`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from emulators.slack_blocks import block_errors
from emulators.slack_errors import ApiError
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_interactive import Triggers
from emulators.slack_signal import StateSignal
from emulators.slack_web import ApiRequest, MethodSpec
from emulators.slack_workspace import Workspace

MAX_VIEW_BLOCKS = 100
MODAL_TITLE_MAX_CHARS = 24
VIEW_TYPES = ("home", "modal")


@dataclass
class StoredView:
    """A published home tab or an opened modal, and every version it went through."""

    id: str
    user: str
    view: JsonDict
    history: list[JsonDict] = field(default_factory=list)


class Views:
    """views.publish / views.open / views.update over per-user home tabs and opened modals."""

    def __init__(self, identity: AppIdentity, workspace: Workspace, triggers: Triggers, signal: StateSignal) -> None:
        self.identity, self.workspace, self.triggers, self.signal = identity, workspace, triggers, signal
        self.homes: dict[str, StoredView] = {}
        self.modals: list[StoredView] = []

    def specs(self) -> dict[str, MethodSpec]:
        """The views methods (no scope needed, as in Slack)."""
        return {
            "views.publish": MethodSpec(self.views_publish),
            "views.open": MethodSpec(self.views_open),
            "views.update": MethodSpec(self.views_update),
        }

    async def views_publish(self, req: ApiRequest) -> JsonDict:
        """views.publish: replace `user_id`'s App Home tab."""
        user = req.required("user_id")
        if user not in self.workspace.users:
            raise ApiError("user_not_found")
        view = _view(req)
        if view.get("type") != "home":
            raise _invalid("must be 'home' [json-pointer:/view/type]")
        stored = self.homes.get(user)
        _check_hash(req, stored)
        if stored is None:
            stored = self.homes[user] = StoredView(_view_id(), user, {})
        return {"view": self._store(stored, view)}

    async def views_open(self, req: ApiRequest) -> JsonDict:
        """views.open: a modal for the person whose fresh trigger_id came with it."""
        trigger = req.optional("trigger_id") or req.optional("interactivity_pointer")
        if not trigger:
            raise _invalid("missing required field: trigger_id")
        view = _view(req)
        if view.get("type") != "modal":
            raise _invalid("must be 'modal' [json-pointer:/view/type]")
        user = self.triggers.exchange(trigger)
        stored = StoredView(_view_id(), user, {})
        self.modals.append(stored)
        return {"view": self._store(stored, view)}

    async def views_update(self, req: ApiRequest) -> JsonDict:
        """views.update of an open modal or a home tab, by view_id or external_id."""
        view = _view(req)
        stored = self._find(req.optional("view_id"), req.optional("external_id"))
        _check_hash(req, stored)
        if view.get("type") != stored.view.get("type"):
            raise _invalid(f"must be '{stored.view.get('type')}' [json-pointer:/view/type]")
        return {"view": self._store(stored, view)}

    def opened(self, user: str) -> list[JsonDict]:
        """The current state of every modal opened for `user`, oldest first."""
        return [m.view for m in self.modals if m.user == user]

    def _find(self, view_id: str | None, external_id: str | None) -> StoredView:
        if not view_id and not external_id:
            raise _invalid("missing required field: view_id")
        for stored in [*self.homes.values(), *self.modals]:
            if stored.id == view_id or (external_id and stored.view.get("external_id") == external_id):
                return stored
        raise ApiError("not_found")

    def _store(self, stored: StoredView, view: JsonDict) -> JsonDict:
        full: JsonDict = {
            "id": stored.id,
            "team_id": self.identity.team_id,
            "type": view["type"],
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(secrets.randbelow(10**10))}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": stored.id,
            "app_id": self.identity.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.identity.team_id,
            "bot_id": self.identity.bot_id,
        }
        stored.view = full
        stored.history.append(full)
        self.signal.changed()
        return full


def _view(req: ApiRequest) -> JsonDict:
    raw: Any = req.params.get("view")
    if raw is None or raw == "":
        raise _invalid("missing required field: view")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ApiError("invalid_arguments") from None
    if not isinstance(raw, dict) or raw.get("type") not in VIEW_TYPES:
        raise _invalid("must be one of 'home', 'modal' [json-pointer:/view/type]")
    blocks = raw.get("blocks", [])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise ApiError("invalid_arguments")
    errors = block_errors(blocks, max_blocks=MAX_VIEW_BLOCKS)
    if raw["type"] == "modal":
        title = raw.get("title")
        if not isinstance(title, dict) or title.get("type") != "plain_text" or not title.get("text"):
            errors.append("must provide a plain_text title [json-pointer:/view/title]")
        elif len(str(title["text"])) > MODAL_TITLE_MAX_CHARS:
            errors.append(f"must be less than {MODAL_TITLE_MAX_CHARS + 1} characters [json-pointer:/view/title/text]")
    if errors:
        raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
    return raw


def _check_hash(req: ApiRequest, stored: StoredView | None) -> None:
    given = req.optional("hash")
    if given and (stored is None or stored.view.get("hash") != given):
        raise ApiError("hash_conflict")


def _invalid(message: str) -> ApiError:
    return ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {message}"]})


def _view_id() -> str:
    return "V" + secrets.token_hex(5).upper()
