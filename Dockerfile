# gql_chat: slim image, dependencies installed from uv.lock, runs as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    GQL_CHAT_ENV=production

RUN pip install --no-cache-dir 'uv>=0.13,<0.14'

WORKDIR /app
# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY gql_chat ./gql_chat
RUN uv sync --frozen --no-dev && useradd --system --uid 10001 --no-create-home gqlchat

USER gqlchat
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["gql-chat", "serve", "--host", "0.0.0.0", "--port", "8000"]
