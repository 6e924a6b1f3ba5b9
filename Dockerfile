# matrec Slack bot (the image holds the matrec and bot packages only; tests, emulators and bench stay out).
#
#   docker build -t matrec .
#   Socket Mode (SLACK_APP_TOKEN set, no public URL needed):
#     docker run --env-file .env -v matrec-data:/data --stop-timeout 75 matrec
#   HTTP mode (SLACK_APP_TOKEN unset, SLACK_SIGNING_SECRET set; Slack posts to /slack/events):
#     docker run --env-file .env -v matrec-data:/data --stop-timeout 75 -p 3000:3000 matrec
#     (with -e PORT=8080, publish -p 8080:8080; the health check follows PORT)
#
# --stop-timeout 75: on SIGTERM the bot stops taking new uploads and waits up to 60 s
# (MATREC_SHUTDOWN_GRACE_S; the default is SHUTDOWN_GRACE_S in bot/settings.py) for running
# consultations to finish and post their results, then hands the rest to the next start. Docker's
# default of 10 s would SIGKILL them half-way. Raise the timeout with the grace. In Compose use
# `stop_grace_period: 75s`; in Kubernetes `terminationGracePeriodSeconds: 75`.
#
# /healthz answers on PORT in both modes (503 while Socket Mode is disconnected).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependency layer, rebuilt only when pyproject.toml changes: it installs the dependencies of a
# stand-in project, so only pyproject.toml is copied. The README and packages are empty stubs
# (pyproject's `readme = "README.md"` makes setuptools read it), so editing the README or the
# code does not reinstall every dependency.
COPY pyproject.toml ./
RUN mkdir -p matrec bot \
    && touch README.md matrec/__init__.py bot/__init__.py \
    && pip install . \
    && pip uninstall -y matrec \
    && rm -rf README.md matrec bot build

# The code, with the prompt files (package data under matrec/prompts/), and the real README for
# the package's metadata.
COPY README.md ./
COPY matrec ./matrec
COPY bot ./bot
RUN pip install --no-deps . && rm -rf build

RUN useradd --create-home --uid 10001 matrec && mkdir /data && chown matrec /data
USER matrec
WORKDIR /data
VOLUME ["/data"]
ENV DATABASE_URL=sqlite:////data/matrec.db \
    PORT=3000
EXPOSE 3000
# Shell form so ${PORT} is read when the check runs: `docker run -e PORT=8080` moves the check too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)" "http://127.0.0.1:${PORT:-3000}/healthz"
# Exec form: python is PID 1 and gets SIGTERM itself, so the graceful stop above happens.
ENTRYPOINT ["python", "-m", "bot"]
