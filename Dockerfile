# matrec Slack bot. Build: docker build -t matrec .   Run: docker run --env-file .env -v matrec-data:/data matrec
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependency layer: rebuilt only when pyproject.toml changes (the packages are empty stand-ins here).
COPY pyproject.toml README.md ./
RUN mkdir -p matrec bot \
    && touch matrec/__init__.py bot/__init__.py \
    && pip install . \
    && pip uninstall -y matrec \
    && rm -rf matrec bot build

# The code, with the prompt files (package data under matrec/prompts/).
COPY matrec ./matrec
COPY bot ./bot
RUN pip install --no-deps . && rm -rf build

RUN useradd --create-home --uid 10001 matrec && mkdir /data && chown matrec /data
USER matrec
WORKDIR /data
ENV DATABASE_URL=sqlite:////data/matrec.db \
    PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4)"]
ENTRYPOINT ["python", "-m", "bot"]
