"""compose.yaml, checked without a Docker engine: against the Compose Specification's JSON schema
(vendored in deploy/, source in deploy/README.md) and against the bot itself: its settings, the
port and paths it serves, the database it is given, and the balancer in front of it in HTTP mode.

Each check is a function that returns the problems it finds; the real files must have none, and
a deliberately broken copy of each must have some, so no check passes by looking at nothing.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from aiohttp import web
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from bot.readiness import READY_PING_TIMEOUT_S
from bot.server import EVENTS_PATH, READY_PATH, web_app
from bot.service import StartupError, check
from bot.settings import SHUTDOWN_GRACE_S, BotSettings
from bot.store.urls import PostgresDatabase, parse_database_url
from matrec.settings import EngineSettings, env_name

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
SCHEMA = ROOT / "deploy" / "compose-spec.json"
SCHEMA_NOTE = ROOT / "deploy" / "README.md"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
SETTINGS_TYPES: tuple[type[BaseSettings], ...] = (BotSettings, EngineSettings)
REQUIRED_SECRETS = ("SLACK_BOT_TOKEN", "ANTHROPIC_API_KEY", "POSTGRES_PASSWORD")  # needed in either mode
HTTP_PROFILE = "http"
BOT_INSTANCES = 2
POSTGRES_PORT = 5432
STOP_MARGIN_S = 10  # time beyond the drain for the process to close connections and exit
HEALTHCHECK_RUN_TIMEOUT_S = 30.0

Doc = dict[str, Any]
Problems = list[str]

# Compose's interpolation: $$ is a literal $, then $NAME or ${NAME}, ${NAME:-default},
# ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+replacement}, ${NAME+replacement}.
_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class MissingVariableError(ValueError):
    """A `${NAME:?message}` (or `?`) whose variable is unset, as Compose refuses it."""


def _references(text: str) -> Iterator[tuple[str, str | None]]:
    """The variables a string refers to, each with its operator (`:?`, `:-`, ...) or None."""
    for match in _REFERENCE.finditer(text):
        if match["escaped"]:
            continue
        if match["named"]:
            yield match["named"], None
            continue
        braced = _BRACED.fullmatch(match["braced"])
        assert braced, f"not a Compose variable reference: {match[0]!r}"
        assert "$" not in (braced["arg"] or ""), f"nested references are not used here: {match[0]!r}"
        yield braced["name"], braced["op"]


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`text` as Compose reads it with `env` as the shell's environment."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.fullmatch(match["braced"])
        assert braced, f"not a Compose variable reference: {match[0]!r}"
        name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
        value = env.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in {":?", "?"} and missing:
            raise MissingVariableError(f"{name}: {arg}")
        if op in {":-", "-"}:
            return arg if missing else str(value)
        if op in {":+", "+"}:
            return "" if missing else arg
        return value or ""

    return _REFERENCE.sub(replace, text)


def interpolate_all(node: object, env: Mapping[str, str]) -> object:
    """A loaded YAML document with every string interpolated, as Compose reads the file."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {interpolate_all(k, env): interpolate_all(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_all(item, env) for item in node]
    return node


def _strings(node: object) -> Iterator[str]:
    """Every string in a loaded YAML document, keys and values."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _seconds(duration: str) -> float:
    """A Compose duration (`75s`, `1m15s`, `500ms`) in seconds."""
    parts = _DURATION_PART.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def _setting_names() -> set[str]:
    """The environment variable of every field of the bot's and the engine's settings."""
    return {env_name(kind, (field,)) for kind in SETTINGS_TYPES for field in kind.model_fields}


def _secret_setting_names() -> set[str]:
    """The settings that hold secrets (typed SecretStr), by environment variable."""
    names = set()
    for kind in SETTINGS_TYPES:
        for field, info in kind.model_fields.items():
            annotation = info.annotation
            if annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ()):
                names.add(env_name(kind, (field,)))
    return names


def bot_services(doc: Doc) -> dict[str, Doc]:
    """The services built from the repository's Dockerfile: the bot instances."""
    services: dict[str, Doc] = doc["services"]
    return {name: s for name, s in services.items() if isinstance(s.get("build"), dict | str)}


def balancer(doc: Doc) -> tuple[str, Doc]:
    """The service that mounts deploy/Caddyfile."""
    for name, service in doc["services"].items():
        if any(str(v).startswith("./deploy/Caddyfile:") for v in service.get("volumes", [])):
            return name, service
    raise AssertionError("no service mounts ./deploy/Caddyfile")


def _environment(service: Doc) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment is written as a mapping here"
    return {str(k): str(v) for k, v in environment.items()}


def _bot_port(doc: Doc) -> int:
    ports = {int(_environment(s)["PORT"]) for s in bot_services(doc).values()}
    assert len(ports) == 1, f"the bot instances listen on different ports: {ports}"
    return ports.pop()


# ---- the checks --------------------------------------------------------------------------------


def schema_problems(doc: Doc, _caddyfile: str) -> Problems:
    """What the Compose Specification's JSON schema rejects."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def variable_problems(doc: Doc, caddyfile: str) -> Problems:
    """Variables that are neither a setting of the bot nor listed under x-compose-variables."""
    documented = set(doc.get("x-compose-variables", {}))
    known = _setting_names() | documented
    used = {name for text in _strings(doc) for name, _ in _references(text)}
    problems = [f"${{{name}}} is no bot setting and not in x-compose-variables" for name in sorted(used - known)]
    problems += [f"x-compose-variables lists {name}, which nothing uses" for name in sorted(documented - used)]
    for name, service in bot_services(doc).items():
        problems += [
            f"{name}: {key} is not a bot setting" for key in sorted(set(_environment(service)) - _setting_names())
        ]
    # The Caddyfile's {$NAME} placeholders are read from the balancer's environment.
    balancer_name, balancer_service = balancer(doc)
    for name in sorted(
        set(re.findall(r"\{\$([A-Za-z_][A-Za-z0-9_]*)", caddyfile)) - set(_environment(balancer_service))
    ):
        problems.append(f"the Caddyfile reads {name}, which {balancer_name} is not given")
    return problems


def secret_problems(doc: Doc, _caddyfile: str) -> Problems:
    """Secrets written into the file, and required ones that Compose would not refuse to start without."""
    problems = []
    operators: dict[str, set[str | None]] = {}
    for text in _strings(doc):
        for name, op in _references(text):
            operators.setdefault(name, set()).add(op)
    for name in REQUIRED_SECRETS:
        if operators.get(name) != {":?"}:
            problems.append(f"{name} should be referenced only as ${{{name}:?...}}, found {operators.get(name)}")
    for service_name, service in doc["services"].items():
        for key, value in _environment(service).items():
            if key in _secret_setting_names() | set(REQUIRED_SECRETS) and not list(_references(value)):
                problems.append(f"{service_name}: {key} is written into the file")
    return problems


def healthcheck_problems(doc: Doc, _caddyfile: str) -> Problems:
    """Bot health checks that do not ask the bot's readiness path on its own PORT."""
    problems = []
    for name, service in bot_services(doc).items():
        health = service.get("healthcheck", {})
        test = health.get("test", [])
        command = interpolate(test[1], {}) if test[:1] == ["CMD-SHELL"] and len(test) == 2 else ""
        if f"127.0.0.1:${{PORT}}{READY_PATH}" not in command:
            problems.append(f"{name}: the health check should ask http://127.0.0.1:$PORT{READY_PATH} in a shell")
        if "PORT" not in _environment(service):
            problems.append(f"{name}: PORT is not set, so the check and the balancer could disagree with the bot")
        if _seconds(health.get("timeout", "30s")) <= READY_PING_TIMEOUT_S:
            problems.append(f"{name}: the check's timeout leaves no room for the bot's database ping")
        if _seconds(service.get("stop_grace_period", "10s")) < SHUTDOWN_GRACE_S + STOP_MARGIN_S:
            problems.append(f"{name}: stop_grace_period is shorter than the bot's drain")
    return problems


def dependency_problems(doc: Doc, _caddyfile: str) -> Problems:
    """Bots that may start before PostgreSQL is healthy, and a PostgreSQL that says so too early."""
    problems = []
    for name, service in bot_services(doc).items():
        depends_on = service.get("depends_on", {})
        condition = depends_on.get("postgres", {}).get("condition") if isinstance(depends_on, dict) else None
        if condition != "service_healthy":
            problems.append(f"{name}: depends_on postgres should have condition service_healthy, not {condition}")
    test = doc["services"]["postgres"].get("healthcheck", {}).get("test", [])
    if "pg_isready" not in " ".join(test) or "--host=127.0.0.1" not in test:
        problems.append("postgres: the health check should be pg_isready over TCP (--host=127.0.0.1)")
    return problems


def database_problems(doc: Doc, _caddyfile: str) -> Problems:
    """A DATABASE_URL that is not the postgres service's host, port, user, password and database."""
    postgres = _environment(doc["services"]["postgres"])
    shell = {"POSTGRES_PASSWORD": "pw", "SLACK_BOT_TOKEN": "xoxb-1", "ANTHROPIC_API_KEY": "k"}
    password = interpolate(postgres["POSTGRES_PASSWORD"], shell)
    expected = ("postgres", POSTGRES_PORT, postgres["POSTGRES_USER"], password, postgres["POSTGRES_DB"])
    problems = []
    for name, service in bot_services(doc).items():
        url = interpolate(_environment(service).get("DATABASE_URL", ""), shell)
        parts = urlsplit(url)
        if (parts.hostname, parts.port, parts.username, parts.password, parts.path.removeprefix("/")) != expected:
            problems.append(f"{name}: DATABASE_URL {url!r} is not the postgres service's database")
        elif not isinstance(parse_database_url(url), PostgresDatabase):
            problems.append(f"{name}: the bot does not read {url!r} as PostgreSQL")
    return problems


def instance_problems(doc: Doc, _caddyfile: str) -> Problems:
    """Anything but two identical bot instances built from the repository's Dockerfile."""
    bots = list(bot_services(doc).values())
    if len(bots) != BOT_INSTANCES:
        return [f"{len(bots)} bot instances, not {BOT_INSTANCES}"]
    problems = [] if all(bot == bots[0] for bot in bots) else ["the bot instances are configured differently"]
    build = bots[0]["build"]
    context, dockerfile = (build, "Dockerfile") if isinstance(build, str) else (build["context"], build["dockerfile"])
    if (ROOT / context).resolve() != ROOT or not (ROOT / dockerfile).is_file():
        problems.append(f"the bots are not built from the repository's Dockerfile: {build}")
    return problems


def balancer_problems(doc: Doc, caddyfile: str) -> Problems:
    """A balancer that misses an instance or its port, does not check readiness, or runs in Socket Mode."""
    name, service = balancer(doc)
    problems = []
    upstreams = re.findall(r"^\s*reverse_proxy\s+([^{\n]+?)\s*\{", caddyfile, re.MULTILINE)
    expected = {f"{bot}:{_bot_port(doc)}" for bot in bot_services(doc)}
    if len(upstreams) != 1 or set(upstreams[0].split()) != expected:
        problems.append(f"the Caddyfile should proxy to {sorted(expected)}, found {upstreams}")
    directives = dict(re.findall(r"^\s*(lb_policy|health_uri|health_timeout)\s+(\S+)", caddyfile, re.MULTILINE))
    if directives.get("lb_policy") != "round_robin":
        problems.append("the Caddyfile should balance round_robin")
    if directives.get("health_uri") != READY_PATH:
        problems.append(f"the Caddyfile should check {READY_PATH}")
    if _seconds(directives.get("health_timeout", "0s")) <= READY_PING_TIMEOUT_S:
        problems.append("the Caddyfile's health_timeout leaves no room for the bot's database ping")
    handled = re.findall(r"^\s*handle\s*(\S*)\s*\{", caddyfile, re.MULTILINE)
    if handled != [EVENTS_PATH, ""] or not re.search(r"^\s*respond 404$", caddyfile, re.MULTILINE):
        problems.append(f"the Caddyfile should publish {EVENTS_PATH} alone and answer 404 elsewhere")
    if service.get("profiles") != [HTTP_PROFILE]:
        problems.append(f"{name} should run only in the {HTTP_PROFILE!r} profile (Socket Mode needs no balancer)")
    problems += [
        f"{bot} is in a profile, so one mode would lack it" for bot, s in bot_services(doc).items() if "profiles" in s
    ]
    problems += [
        f"{bot} publishes a port; only the balancer should" for bot, s in bot_services(doc).items() if "ports" in s
    ]
    return problems


CHECKS: list[Callable[[Doc, str], Problems]] = [
    schema_problems,
    variable_problems,
    secret_problems,
    healthcheck_problems,
    dependency_problems,
    database_problems,
    instance_problems,
    balancer_problems,
]


# ---- broken copies, at least one per check ------------------------------------------------------


@dataclass(frozen=True)
class Breakage:
    """A copy of compose.yaml and/or the Caddyfile broken on purpose, and the check that must notice."""

    name: str
    check: Callable[[Doc, str], Problems]
    compose: Callable[[Doc], None] = lambda _doc: None
    caddyfile: Callable[[str], str] = lambda text: text


def _bot(doc: Doc) -> Doc:
    return next(iter(bot_services(doc).values()))


def _bot_env(key: str, value: str) -> Callable[[Doc], None]:
    return lambda doc: _bot(doc)["environment"].update({key: value})


def _bot_set(key: str, value: object) -> Callable[[Doc], None]:
    return lambda doc: _bot(doc).update({key: value})


def _every_bot_set(key: str, value: object) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        for bot in bot_services(doc).values():
            bot[key] = value

    return mutate


def _postgres_set(key: str, value: object) -> Callable[[Doc], None]:
    return lambda doc: doc["services"]["postgres"].update({key: value})


def _health(test: list[str]) -> Callable[[Doc], None]:
    return lambda doc: _bot(doc)["healthcheck"].update(test=test)


def _caddy(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"{old!r} is not in the Caddyfile"
        return text.replace(old, new)

    return mutate


_URL = "postgresql://matrec:${POSTGRES_PASSWORD:?x}@"
BROKEN = [
    Breakage(
        "a misspelt depends_on condition",
        schema_problems,
        _bot_set("depends_on", {"postgres": {"condition": "service_healty"}}),
    ),
    Breakage("an unknown service key", schema_problems, _postgres_set("helthcheck", {})),
    Breakage("a duration that is a number", schema_problems, _bot_set("stop_grace_period", 75)),
    Breakage("a variable that is no setting", variable_problems, _bot_env("MATREC_TRIGGR", "${MATREC_TRIGGR:-all}")),
    Breakage("a Caddyfile placeholder not passed", variable_problems, caddyfile=_caddy("{$SITE_ADDRESS", "{$SITE")),
    Breakage("a literal bot token", secret_problems, _bot_env("SLACK_BOT_TOKEN", "xoxb-123-456")),
    Breakage("an optional bot token", secret_problems, _bot_env("SLACK_BOT_TOKEN", "${SLACK_BOT_TOKEN}")),
    Breakage("a literal metrics token", secret_problems, _bot_env("MATREC_METRICS_TOKEN", "hunter2")),
    Breakage(
        "liveness in the check",
        healthcheck_problems,
        _health(["CMD-SHELL", "curl -f http://127.0.0.1:$${PORT}/healthz"]),
    ),
    Breakage(
        "a fixed port in the check",
        healthcheck_problems,
        _health(["CMD-SHELL", "curl -f http://127.0.0.1:3000/readyz"]),
    ),
    Breakage(
        "a check in exec form", healthcheck_problems, _health(["CMD", "curl", "http://127.0.0.1:$${PORT}/readyz"])
    ),
    Breakage("a stop grace shorter than the drain", healthcheck_problems, _bot_set("stop_grace_period", "10s")),
    Breakage(
        "bots that wait only for a started postgres",
        dependency_problems,
        _bot_set("depends_on", {"postgres": {"condition": "service_started"}}),
    ),
    Breakage(
        "pg_isready over the socket",
        dependency_problems,
        _postgres_set("healthcheck", {"test": ["CMD", "pg_isready", "--username=matrec"]}),
    ),
    Breakage("another database host", database_problems, _bot_env("DATABASE_URL", _URL + "db:5432/matrec")),
    Breakage("another database name", database_problems, _bot_env("DATABASE_URL", _URL + "postgres:5432/postgres")),
    Breakage(
        "another database user",
        database_problems,
        _bot_env("DATABASE_URL", "postgresql://postgres:${POSTGRES_PASSWORD:?x}@postgres:5432/matrec"),
    ),
    Breakage("one bot instance", instance_problems, lambda doc: doc["services"].pop("bot-2")),
    Breakage("instances that differ", instance_problems, _bot_set("restart", "no")),
    Breakage(
        "bots built from elsewhere",
        instance_problems,
        _every_bot_set("build", {"context": "bot", "dockerfile": "Dockerfile"}),
    ),
    Breakage("an instance left out of the balancer", balancer_problems, caddyfile=_caddy(" bot-2:3000", "")),
    Breakage(
        "the balancer on another port",
        balancer_problems,
        caddyfile=_caddy("bot-1:3000 bot-2:3000", "bot-1:8080 bot-2:8080"),
    ),
    Breakage(
        "the balancer checking liveness",
        balancer_problems,
        caddyfile=_caddy("health_uri /readyz", "health_uri /healthz"),
    ),
    Breakage(
        "the balancer publishing every path", balancer_problems, caddyfile=_caddy("handle /slack/events {", "handle {")
    ),
    Breakage("the balancer in every mode", balancer_problems, lambda doc: balancer(doc)[1].pop("profiles")),
    Breakage("a bot publishing a port", balancer_problems, _bot_set("ports", ["3000:3000"])),
]


@pytest.fixture(scope="module")
def compose() -> Doc:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def caddyfile() -> str:
    return CADDYFILE.read_text()


@pytest.mark.parametrize("check_files", CHECKS, ids=lambda c: c.__name__)
def test_compose_yaml_and_the_caddyfile_pass_every_check(
    check_files: Callable[[Doc, str], Problems], compose: Doc, caddyfile: str
) -> None:
    assert check_files(compose, caddyfile) == []


@pytest.mark.parametrize("breakage", BROKEN, ids=lambda b: b.name)
def test_a_copy_broken_on_purpose_is_caught_by_its_check(breakage: Breakage, compose: Doc, caddyfile: str) -> None:
    broken = copy.deepcopy(compose)
    breakage.compose(broken)
    assert breakage.check(broken, breakage.caddyfile(caddyfile)), breakage.name


def test_every_check_has_a_broken_copy_that_it_catches() -> None:
    assert {b.check for b in BROKEN} == set(CHECKS)


def test_the_vendored_schema_is_the_file_its_note_names() -> None:
    recorded = re.findall(r"sha256: `([0-9a-f]{64})`", SCHEMA_NOTE.read_text())
    assert recorded == [hashlib.sha256(SCHEMA.read_bytes()).hexdigest()]
    assert json.loads(SCHEMA.read_text())["title"] == "Compose Specification"


@pytest.mark.parametrize("missing", REQUIRED_SECRETS)
def test_compose_refuses_to_start_without_a_required_secret(missing: str, compose: Doc) -> None:
    env = {name: "set" for name in REQUIRED_SECRETS if name != missing}
    with pytest.raises(MissingVariableError, match=missing):
        interpolate_all(compose, env)


def _bot_environment(compose: Doc, shell: Mapping[str, str]) -> dict[str, str]:
    """What a bot container's environment holds, interpolated from the shell's."""
    return {key: interpolate(value, shell) for key, value in _environment(_bot(compose)).items()}


BASE_SHELL = {"SLACK_BOT_TOKEN": "xoxb-1", "ANTHROPIC_API_KEY": "sk-test", "POSTGRES_PASSWORD": "pw"}


@pytest.mark.parametrize(
    ("shell", "socket_mode"),
    [({"SLACK_APP_TOKEN": "xapp-1"}, True), ({"SLACK_SIGNING_SECRET": "secret"}, False)],
    ids=["app token set: Socket Mode", "app token unset: HTTP mode"],
)
def test_the_app_token_selects_the_mode_as_the_bot_reads_its_environment(
    shell: dict[str, str], socket_mode: bool, compose: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _bot_environment(compose, BASE_SHELL | shell).items():
        monkeypatch.setenv(key, value)
    settings = BotSettings()
    assert settings.socket_mode is socket_mode
    assert ipaddress.ip_address(settings.host).is_unspecified  # reachable from the balancer and the check
    assert settings.port == _bot_port(compose)
    assert check(settings)[1] == ("xapp-1" if socket_mode else None)


def test_http_mode_without_the_signing_secret_stops_the_bot_naming_it(
    compose: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _bot_environment(compose, BASE_SHELL).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(StartupError, match="SLACK_SIGNING_SECRET"):
        check(BotSettings())


async def _run_health_check(compose: Doc, ready: bool) -> int:
    """The bot service's health check command, run by a shell against the bot's own web app."""

    async def health() -> tuple[bool, dict[str, Any]]:
        return True, {}

    async def readiness() -> tuple[bool, dict[str, Any]]:
        return (True, {}) if ready else (False, {"reason": "draining"})

    runner = web.AppRunner(web_app(None, health, readiness))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        command = interpolate(_bot(compose)["healthcheck"]["test"][1], {})  # Compose turns $$ into $
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        process = await asyncio.create_subprocess_exec(
            "sh", "-c", command, env={"PORT": str(port), "PATH": path}, stderr=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(HEALTHCHECK_RUN_TIMEOUT_S):
            return await process.wait()
    finally:
        await runner.cleanup()


async def test_the_health_check_passes_on_a_ready_bot_at_its_port(compose: Doc) -> None:
    assert await _run_health_check(compose, ready=True) == 0


async def test_the_health_check_fails_on_a_bot_that_is_not_ready(compose: Doc) -> None:
    assert await _run_health_check(compose, ready=False) != 0
