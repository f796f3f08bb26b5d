# The web and worker image: `docker compose build`, or `docker build -t rce-app .`.
#
# The base is a build argument so that the image builds without a registry, from a base imported
# from Debian's packages (any Debian bookworm with python3, python3-venv and python3-pip will do):
#
#   mmdebstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm - \
#     | docker import - rce-base:local
#   docker build --build-arg BASE_IMAGE=rce-base:local -t rce-app .
#
# Only instructions the classic builder knows are used, so no frontend image has to be pulled.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BIND=0.0.0.0:8000 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The requirements come before the code, so that a code change does not reinstall them: the lock,
# every package pinned and hash-checked (see `make lock`).
COPY requirements.txt /app/requirements.txt
RUN python3 -m venv /opt/venv \
 && pip install --no-cache-dir --disable-pip-version-check --require-hashes -r /app/requirements.txt

# Fixed ids: docker-compose.yml gives this user its metrics tmpfs by number.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin app

WORKDIR /app
COPY . /app

# The code and the static files stay root's, so the app cannot rewrite them; only var/ (the SQLite
# default, for a container run without DATABASE_URL) belongs to the app user.
RUN python manage.py collectstatic --noinput -v0 \
 && chown app:app /app/var

USER app
EXPOSE 8000 9100
# Workers override this with `python manage.py rqworker sandbox` (see docker-compose.yml).
CMD ["python", "-m", "sandbox_project.serve"]
