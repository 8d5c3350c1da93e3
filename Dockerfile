# The Switchboard image: the API (`switchboard run`) and the durable workers (`switchboard worker`) use it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_DATA=/var/lib/switchboard

WORKDIR /app
COPY pyproject.toml README.md ./
COPY switchboard ./switchboard
COPY engine ./engine
COPY store ./store
COPY api ./api
COPY runtime ./runtime
COPY agents ./agents
COPY tools ./tools
COPY prompts ./prompts
RUN pip install . \
    && useradd --system --create-home --home-dir /var/lib/switchboard switchboard

USER switchboard
EXPOSE 8000
CMD ["switchboard", "run"]
