"""The Dockerfile and .dockerignore, checked statically (no Docker engine runs the tests)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from bot.settings import SHUTDOWN_GRACE_S, BotSettings

ROOT = Path(__file__).resolve().parent.parent
IMAGE_INPUTS = frozenset({"pyproject.toml", "README.md", "matrec", "bot"})
STOP_MARGIN_S = 10  # time beyond the drain for the process to close connections and exit


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword and its value, continuation lines joined."""

    keyword: str
    value: str


@dataclass(frozen=True)
class Dockerfile:
    """The parsed Dockerfile."""

    base_image: str
    instructions: list[Instruction]
    env: dict[str, str]

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction with this keyword, in order."""
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str:
        """The value of the last instruction with this keyword (the one that takes effect)."""
        found = self.all(keyword)
        assert found, f"the Dockerfile has no {keyword}"
        return found[-1].value

    def header(self) -> str:
        """The comment block above FROM."""
        lines = []
        for instruction in self.instructions:
            if instruction.keyword != "COMMENT":
                break
            lines.append(instruction.value)
        return "\n".join(lines)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    instructions = [Instruction(str(i["instruction"]), str(i["value"])) for i in parser.structure]
    return Dockerfile(str(parser.baseimage), instructions, {str(k): str(v) for k, v in parser.envs.items()})


def _copy_sources(instruction: Instruction) -> list[str]:
    """COPY's sources, in shell or JSON form, without its --flags and destination."""
    value = instruction.value.strip()
    words = [str(w) for w in json.loads(value)] if value.startswith("[") else shlex.split(value)
    return [w.removeprefix("./").rstrip("/") for w in words if not w.startswith("--")][:-1]


def _dependency_layer(dockerfile: Dockerfile) -> tuple[list[Instruction], Instruction]:
    """The COPYs before the first `pip install`, and that RUN."""
    copies: list[Instruction] = []
    for instruction in dockerfile.instructions:
        if instruction.keyword == "COPY":
            copies.append(instruction)
        if instruction.keyword == "RUN" and "pip install" in instruction.value:
            return copies, instruction
    raise AssertionError("the Dockerfile never runs pip install")


def test_base_image_is_a_pinned_python_3_11_slim_tag(dockerfile: Dockerfile) -> None:
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", dockerfile.base_image)


def test_dependency_install_copies_only_pyproject_toml(dockerfile: Dockerfile) -> None:
    copies, _ = _dependency_layer(dockerfile)
    assert [source for copy in copies for source in _copy_sources(copy)] == ["pyproject.toml"]


def test_readme_is_a_stub_in_the_dependency_layer_not_a_copy(dockerfile: Dockerfile) -> None:
    copies, install = _dependency_layer(dockerfile)
    assert all("README.md" not in _copy_sources(copy) for copy in copies)
    # pyproject's readme = "README.md" makes setuptools read it, so the install step makes an empty one.
    assert "README.md" in install.value


def test_the_code_is_copied_after_the_dependency_install(dockerfile: Dockerfile) -> None:
    _, install = _dependency_layer(dockerfile)
    later = dockerfile.instructions[dockerfile.instructions.index(install) :]
    copied_later = {source for copy in later if copy.keyword == "COPY" for source in _copy_sources(copy)}
    assert {"matrec", "bot"} <= copied_later


def test_the_image_holds_only_the_matrec_and_bot_packages(dockerfile: Dockerfile) -> None:
    sources = {source for copy in dockerfile.all("COPY") for source in _copy_sources(copy)}
    assert sources <= IMAGE_INPUTS
    assert not dockerfile.all("ADD")


def test_healthcheck_asks_healthz_on_the_port_from_the_environment(dockerfile: Dockerfile) -> None:
    options, _, command = dockerfile.last("HEALTHCHECK").partition("CMD")
    assert "--timeout=" in options
    assert "/healthz" in command
    assert "PORT" in command
    assert ":3000/" not in command  # a fixed port would check the wrong one under -e PORT=8080


def test_entrypoint_runs_python_m_bot_in_exec_form(dockerfile: Dockerfile) -> None:
    # Exec form makes python PID 1, so it receives SIGTERM and drains running consultations.
    assert json.loads(dockerfile.last("ENTRYPOINT")) == ["python", "-m", "bot"]


def test_the_bot_runs_as_a_non_root_user(dockerfile: Dockerfile) -> None:
    user = dockerfile.last("USER").split(":")[0]
    assert user not in {"root", "0"}
    keywords = [i.keyword for i in dockerfile.instructions]
    assert len(keywords) - 1 - keywords[::-1].index("USER") < keywords.index("ENTRYPOINT")


def test_exposed_port_is_the_bots_default_port(dockerfile: Dockerfile) -> None:
    default_port = BotSettings.model_fields["port"].default
    assert dockerfile.last("EXPOSE").split("/")[0] == dockerfile.env["PORT"] == str(default_port)


def test_the_database_lives_on_the_data_volume(dockerfile: Dockerfile) -> None:
    volume = dockerfile.last("VOLUME")
    volumes = json.loads(volume) if volume.startswith("[") else volume.split()
    assert "/data" in volumes
    assert dockerfile.env["DATABASE_URL"].startswith("sqlite:////data/")


def test_usage_gives_a_stop_timeout_longer_than_the_shutdown_grace(dockerfile: Dockerfile) -> None:
    timeouts = [int(t) for t in re.findall(r"--stop-timeout[ =](\d+)", dockerfile.header())]
    assert timeouts, "the header's docker run lines should pass --stop-timeout"
    assert min(timeouts) >= SHUTDOWN_GRACE_S + STOP_MARGIN_S


def test_usage_publishes_the_port_for_http_mode(dockerfile: Dockerfile) -> None:
    header = dockerfile.header()
    assert "docker build -t matrec ." in header
    assert f"-p {dockerfile.env['PORT']}:{dockerfile.env['PORT']}" in header


# .dockerignore, evaluated as Docker does: a pattern matches a path or any of its parents, `*` and
# `?` stay within one path segment, `**` spans segments, and the last matching pattern wins.
def _pattern(pattern: str) -> re.Pattern[str]:
    regex = ""
    segments = pattern.strip("/").split("/")
    for index, segment in enumerate(segments):
        if segment == "**":
            regex += "(?:[^/]+/)*" if index < len(segments) - 1 else ".*"
            continue
        regex += re.escape(segment).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex += "/" if index < len(segments) - 1 else ""
    return re.compile(regex)


def _ignored(path: str) -> bool:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), _pattern(line.removeprefix("!"))))
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, pattern in rules:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".ci/run",
        "tests/test_cli.py",
        "emulators/claude.py",
        "bench/bench_engine.py",
        "scripts/try.sh",
        "samples/bracket.jpg",
        "matrec.egg-info/PKG-INFO",
        ".env",
        "matrec.db",
        "matrec/__pycache__/cli.cpython-311.pyc",
        "bot/.env",
    ],
)
def test_dockerignore_keeps_out_everything_but_the_packages(path: str) -> None:
    assert _ignored(path)


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "matrec/cli.py", "matrec/prompts/metal.md", "bot/__main__.py"]
)
def test_dockerignore_lets_in_what_the_image_is_built_from(path: str) -> None:
    assert not _ignored(path)


def test_every_copy_source_is_in_the_build_context(dockerfile: Dockerfile) -> None:
    for source in {s for copy in dockerfile.all("COPY") for s in _copy_sources(copy)}:
        assert not _ignored(source), f"{source} is copied but .dockerignore leaves it out of the context"
        assert (ROOT / source).exists()
