# The web and worker image: `docker compose build`, or `docker build -t rce-app .`.
#
# The base is a build argument so that the image builds without a registry, from a base imported
# from Debian's packages (any Debian bookworm with python3, python3-venv and python3-pip will do);
# `scripts/dev.sh stack-images` makes one (and Compose's other images) and puts the lock's wheels
# in deploy/wheels, which the build installs from with PIP_NO_INDEX=1 when no index is reachable:
#
#   scripts/dev.sh stack-images        # writes var/stack-images.env: BASE_IMAGE=rce-stack-base:…
#   docker build --build-arg BASE_IMAGE=rce-stack-base:… --build-arg PIP_NO_INDEX=1 -t rce-app .
#
# Only instructions the classic builder knows are used, so no frontend image has to be pulled.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS venv

# Every package pinned and hash-checked (see `make lock`), from the index or from the wheels given
# in deploy/wheels. This stage's layers (wheels included) stay out of the final image.
ARG PIP_NO_INDEX=0
COPY requirements.txt /app/requirements.txt
COPY deploy/wheels /tmp/wheels
RUN python3 -m venv /opt/venv \
 && PIP_FIND_LINKS=/tmp/wheels /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      --require-hashes -r /app/requirements.txt

FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BIND=0.0.0.0:8000 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

COPY --from=venv /opt/venv /opt/venv

# Fixed ids: docker-compose.yml gives this user its metrics tmpfs by number.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin app

# What the app runs, and nothing else (no tests, benchmarks or wheels).
WORKDIR /app
COPY manage.py /app/
COPY sandbox_project /app/sandbox_project
COPY executions /app/executions
COPY templates /app/templates

# The code and the static files stay root's, so the app cannot rewrite them; only var/ (the SQLite
# default, for a container run without DATABASE_URL) belongs to the app user. var/seccomp is where
# Compose mounts Docker's seccomp profile for runs under gVisor (SANDBOX_SECCOMP_PROFILE's default).
RUN python manage.py collectstatic --noinput -v0 \
 && mkdir -p /app/var/seccomp \
 && chown app:app /app/var

USER app
EXPOSE 8000 9100
# Workers override this with `python manage.py sandbox_workers` (see docker-compose.yml).
CMD ["python", "-m", "sandbox_project.serve"]
