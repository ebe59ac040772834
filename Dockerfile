# Quorum production image: one image for the app, the workers and the migrations.
# It runs in production mode: it will not start without QUORUM_COOKIE_KEY and
# QUORUM_ADMIN_PASSWORD set to real secrets (see .env.example).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    QUORUM_DATA_DIR=/data \
    QUORUM_ENVIRONMENT=production

# ffmpeg/ffprobe: audio probing, normalising and splitting.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 quorum \
    && mkdir -p /data \
    && chown -R quorum:quorum /data /app
USER quorum

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"

# The app by default; compose overrides the command for workers and migrations.
# `serve` hands the single sign-on settings (QUORUM_OIDC_*) to Streamlit, then runs it.
CMD ["python", "-m", "core.cli", "serve", "--port", "8501", "--address", "0.0.0.0"]
