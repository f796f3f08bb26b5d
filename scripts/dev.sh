#!/usr/bin/env bash
# Set-up steps behind `make run` and `make test`, each safe to repeat:
#   packages  install the Debian packages the platform needs, if missing (packages-test: and PostgreSQL,
#             docker-compose, gVisor, and Chromium with its driver for the browser tests;
#             packages-bench: and hey)
#   services  start Redis, the Docker engine and (with --postgres) PostgreSQL, if not running
#   editor    install the browser page's editor (CodeMirror, pinned in executions/editor) from npm
#   venv      create .venv and install what running needs, from the lock requirements.txt (venv-test:
#             and the tests' tools, requirements-test.txt; venv-bench: and bench/requirements.txt)
#   run       serve the web app and start the sandbox workers in the foreground (see README,
#             "Slots and supervision", for what keeps running after Ctrl-C)
#   stack-images     the images docker-compose.yml needs, from Debian's packages (see below)
#   seccomp-profile  Docker's seccomp profile as a file in var/seccomp, for runs under gVisor
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VAR="${VAR_DIR:-$ROOT/var}"  # as in settings.py
mkdir -p "$VAR/log"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
say() { printf '==> %s\n' "$*" >&2; }
as_postgres() { if [ -z "$SUDO" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

packages() {
  local wanted=(docker.io redis-server redis-tools mmdebstrap python3-venv python3-pip ca-certificates "$@")
  local missing=()
  # Docker's own packages (Docker CE) conflict with Debian's docker.io: an engine already installed
  # is used as it is.
  if command -v dockerd >/dev/null 2>&1 && ! dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q "ok installed"; then
    say "using the Docker engine already installed ($(dockerd --version 2>/dev/null | head -1))"
    wanted=("${wanted[@]/docker.io}")
  fi
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  # python3-venv matters only if the interpreter we use cannot make a venv by itself.
  if python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing=("${missing[@]/python3-venv}")
    missing=("${missing[@]/python3-pip}")
  fi
  missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages (a few minutes the first time): ${missing[*]}"
    say "apt-get update"
    $SUDO apt-get update -q
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
  fi
}

node_packages() {
  # Node.js and npm run the Piston client's test (tests/test_piston_client.py). A Node.js installed
  # some other way (say, with npm inside it) is used as it is.
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || packages nodejs npm
}

# The browser page's editor, exactly as package-lock.json pins it (versions and sha512 hashes, checked
# before anything is written), again only when the lock changes; no Node.js needed, nothing of it runs.
editor() {
  local dir=executions/editor
  if [ -d "$dir/node_modules/codemirror" ] && cmp -s "$dir/package-lock.json" "$dir/node_modules/.rce-installed-lock"; then
    return
  fi
  say "installing the browser page's editor (CodeMirror, from the npm registry, as $dir/package-lock.json pins it)"
  python3 scripts/install_editor.py "$dir"
}

wait_for() {  # wait_for SECONDS COMMAND...
  local seconds=$1; shift
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

start_redis() {
  if redis-cli -p 6379 ping >/dev/null 2>&1; then return; fi
  say "starting Redis on 127.0.0.1:6379 (append-only, data in var/redis)"
  mkdir -p "$VAR/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$VAR/redis" \
    --appendonly yes --save "" --logfile "$VAR/log/redis.log"
  wait_for 10 redis-cli -p 6379 ping || { say "Redis did not start; see var/log/redis.log"; exit 1; }
}

# The engine's configuration, written only where there is none (an existing one is the operator's:
# then only warnings): live-restore, so that an engine restart leaves running sandboxes alone and
# their runs end `error`; and where gVisor is installed, the runtime `runsc` for
# SANDBOX_RUNTIME=runsc, with Docker's seccomp profile applied inside it (--oci-seccomp). A file
# this script wrote before gVisor was installed is rewritten to add it. Returns 0 if it wrote.
DAEMON_JSON=${DAEMON_JSON:-/etc/docker/daemon.json}
RUNSC_ARGS='["--network=none", "--platform=ptrace", "--oci-seccomp"]'
PLAIN_CONFIG='{"live-restore": true}'
configure_engine() {
  local config=$PLAIN_CONFIG
  if command -v runsc >/dev/null 2>&1; then
    config="{\"live-restore\": true, \"runtimes\": {\"runsc\": {\"path\": \"$(command -v runsc)\", \"runtimeArgs\": $RUNSC_ARGS}}}"
  fi
  if [ -e "$DAEMON_JSON" ]; then
    [ "$(cat "$DAEMON_JSON")" = "$PLAIN_CONFIG" ] && [ "$config" != "$PLAIN_CONFIG" ] || return 1
  fi
  say "writing $DAEMON_JSON: live-restore on$([ "$config" = "$PLAIN_CONFIG" ] || echo ', gVisor registered as runsc')"
  $SUDO mkdir -p "$(dirname "$DAEMON_JSON")"
  echo "$config" | $SUDO tee "$DAEMON_JSON" >/dev/null
}

# Docker's default seccomp profile as a file, for runs under gVisor (see README, "gVisor"): Debian
# ships it in golang-github-docker-docker-dev, whose 250 Go dependencies we do not want; we take
# only the file. The engine's own copy is compiled in and cannot be read.
SECCOMP_PROFILE="$ROOT/var/seccomp/docker-default.json"
seccomp_profile() {
  [ -s "$SECCOMP_PROFILE" ] && return 0
  say "fetching Docker's default seccomp profile (Debian's golang-github-docker-docker-dev) for gVisor"
  local tmp
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  (cd "$tmp" && apt-get download -q golang-github-docker-docker-dev >/dev/null 2>&1 \
    || { $SUDO apt-get update -q && apt-get download -q golang-github-docker-docker-dev; })
  mkdir -p "$(dirname "$SECCOMP_PROFILE")"
  dpkg-deb --fsys-tarfile "$tmp"/golang-github-docker-docker-dev_*.deb \
    | tar -xO ./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json >"$SECCOMP_PROFILE.tmp"
  mv "$SECCOMP_PROFILE.tmp" "$SECCOMP_PROFILE"
  rm -rf "$tmp"
}

# The images docker-compose.yml needs besides the app's, made from Debian's packages with mmdebstrap
# for a host where no registry is reachable (as the sandbox images are), and the Python wheels the
# app image installs there (deploy/wheels, see the Dockerfile). Each image is tagged with a hash of
# its recipe, so a second run builds nothing; their names go to $VAR/stack-images.env, ready for
# Compose's --env-file or a .env. Each entry is four words: name, packages, commands run in the image
# (mmdebstrap's customize hook, with $1 the image's root), `docker import --change` instructions.
STACK_IMAGES=(
  base "python3,python3-venv,python3-pip,ca-certificates" "true" ""
  postgres "postgresql-15" 'install -m 0755 deploy/offline/postgres-entrypoint "$1/usr/local/bin/" &&
    mkdir -p "$1/var/lib/postgresql/data" && chroot "$1" chown postgres:postgres /var/lib/postgresql/data &&
    chmod 0700 "$1/var/lib/postgresql/data"' \
    "USER postgres|ENV PGDATA=/var/lib/postgresql/data|ENV PGHOST=/var/lib/postgresql|ENTRYPOINT [\"/usr/local/bin/postgres-entrypoint\"]|EXPOSE 5432"
  redis "redis-server" 'mkdir -p "$1/data" && chroot "$1" chown redis:redis /data' \
    "USER redis|WORKDIR /data|CMD [\"redis-server\"]|EXPOSE 6379"
  prometheus "prometheus" 'mkdir -p "$1/prometheus" && chown 65534:65534 "$1/prometheus"' \
    "USER 65534:65534|WORKDIR /prometheus|ENTRYPOINT [\"/usr/bin/prometheus\"]|CMD [\"--config.file=/etc/prometheus/prometheus.yml\", \"--storage.tsdb.path=/prometheus\"]|EXPOSE 9090"
)
stack_images() {
  local out="$VAR/stack-images.env" i name packages hook changes tag image args
  : >"$out.tmp"
  for ((i = 0; i < ${#STACK_IMAGES[@]}; i += 4)); do
    name=${STACK_IMAGES[i]} packages=${STACK_IMAGES[i + 1]} hook=${STACK_IMAGES[i + 2]} changes=${STACK_IMAGES[i + 3]}
    tag=$({ printf '%s\n' "$packages" "$hook" "$changes"; [ "$name" != postgres ] || cat deploy/offline/postgres-entrypoint; } \
      | sha256sum | cut -c1-12)
    image="rce-stack-$name:$tag"
    if ! docker image inspect "$image" >/dev/null 2>&1; then
      say "building $image from Debian's packages ($packages; about a minute)"
      args=()
      IFS='|' read -ra parts <<<"$changes"
      for change in "${parts[@]}"; do [ -z "$change" ] || args+=(--change "$change"); done
      # Through a file: a failed mmdebstrap must not leave a half image under the tag.
      mmdebstrap --quiet --variant=minbase --include="$packages" --customize-hook="$hook" bookworm "$VAR/stack-$name.tar"
      docker import "${args[@]}" "$VAR/stack-$name.tar" "$image" >/dev/null
      rm -f "$VAR/stack-$name.tar"
    fi
    echo "${name^^}_IMAGE=$image" >>"$out.tmp"
  done
  mv "$out.tmp" "$out"
  # pip download checks every hash of the lock, as the install in the image will.
  say "fetching the app's wheels into deploy/wheels (for an image built without an index)"
  "$ROOT/.venv/bin/pip" download -q --require-hashes --only-binary=:all: --no-deps -r requirements.txt -d deploy/wheels \
    2> >(grep -v "^WARNING: Location" >&2)
}

check_engine() {
  local runtimes
  runtimes=$(docker info --format '{{json .Runtimes}}' 2>/dev/null) || return 0
  if grep -q '"runsc"' <<<"$runtimes" && ! grep -q -- '--oci-seccomp' <<<"$runtimes"; then
    say "WARNING: the Docker engine registers runsc without --oci-seccomp: runs under runsc are refused."
    say "In /etc/docker/daemon.json set its runtimeArgs to $RUNSC_ARGS, then reload"
    say "the engine: systemctl reload docker, or kill -HUP \$(cat /var/run/docker.pid)"
  fi
  if [ "$(docker info --format '{{.LiveRestoreEnabled}}' 2>/dev/null)" != "true" ]; then
    say "WARNING: the Docker engine runs without live-restore (see README, 'Container engine')"
  fi
}

start_docker() {
  if docker info >/dev/null 2>&1; then
    # Running already (a package's systemd unit starts it at install): both settings reload live.
    if configure_engine; then
      say "reloading the Docker engine's configuration (SIGHUP: running containers are not touched)"
      # The engine behind /var/run/docker.sock: tests may run private engines beside it.
      $SUDO kill -HUP "$(cat /var/run/docker.pid 2>/dev/null || pidof -s dockerd)"
      sleep 1
    fi
    check_engine
    return
  fi
  configure_engine || true
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    say "starting the Docker engine (systemd)"
    $SUDO systemctl start docker
  else
    say "starting the Docker engine (dockerd, log in var/log/dockerd.log)"
    $SUDO sh -c "nohup dockerd >'$VAR/log/dockerd.log' 2>&1 &"
  fi
  wait_for 60 docker info || { say "the Docker engine did not start; see var/log/dockerd.log"; exit 1; }
  check_engine
}

start_postgres() {
  local version
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    say "starting PostgreSQL $version"
    pg_lsclusters -h | grep -q "^$version main" || $SUDO pg_createcluster "$version" main >/dev/null
    $SUDO pg_ctlcluster "$version" main start
  fi
  wait_for 30 as_postgres psql -qtAc 'select 1' || { say "PostgreSQL did not start"; exit 1; }
  if [ "$(as_postgres psql -qtAc "select 1 from pg_roles where rolname='rce'")" != "1" ]; then
    as_postgres psql -qc "create role rce login createdb password 'rce'"
  fi
}

services() {
  start_redis
  start_docker
  if [ "${1:-}" = "--postgres" ]; then start_postgres; fi
}

venv() {  # venv LOCK...: make .venv and install each lock file, pinned and hash-checked
  if [ ! -x .venv/bin/python ]; then
    say "creating the Python virtual environment .venv"
    python3 -m venv .venv
  fi
  local lock stamp
  for lock in "$@"; do
    stamp=".venv/.installed-${lock//\//-}"
    if [ ! -f "$stamp" ] || ! cmp -s "$stamp" "$lock"; then
      say "installing the Python packages locked in $lock (exact versions, hash-checked; a minute or two the first time)"
      .venv/bin/pip install --disable-pip-version-check --progress-bar off --require-hashes -r "$lock" \
        | grep -v -e '^Requirement already satisfied' -e '^Looking in' -e '^WARNING: Location' || true
      [ "${PIPESTATUS[0]}" -eq 0 ] || { say "pip could not install $lock"; exit 1; }
      cp "$lock" "$stamp"
    fi
  done
}

run() {
  local port=${PORT:-8000} host=${HOST:-127.0.0.1}
  local py=.venv/bin/python pids=()
  # The production path, as deployed: DEBUG off, JSON error pages, the same server. With DEBUG off a
  # known SECRET_KEY would let anyone sign a session: one is made for this checkout, once.
  export DEBUG=${DEBUG:-0}
  if [ -z "${SECRET_KEY:-}${SECRET_KEY_FILE:-}" ]; then
    [ -s "$VAR/secret_key" ] || (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > "$VAR/secret_key")
    export SECRET_KEY_FILE="$VAR/secret_key"
  fi
  # Web and workers write their metrics here, so that the web's /metrics shows the workers' too.
  export PROMETHEUS_MULTIPROC_DIR="$VAR/prometheus"
  rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  say "the sandbox image"
  $py manage.py build_sandbox_images
  say "migrating the database ($VAR)"
  $py manage.py migrate --noinput -v0
  $py manage.py collectstatic --noinput -v0
  $py manage.py ensure_default_tenant
  stop() {
    trap - INT TERM
    [ -n "${stopping:-}" ] && return
    stopping=1
    say "stopping (workers finish the execution in hand)"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait
  }
  trap stop INT TERM
  # Each child gets its own session, so that Ctrl-C reaches only this script, which then sends each
  # one SIGTERM, once: a second signal would make an rq worker abandon the execution in hand.
  BIND="$host:$port" setsid $py -m sandbox_project.serve &
  pids+=($!)
  # SANDBOX_SLOTS rq workers (by default as many as this host holds), under a supervisor that
  # replaces any that dies and passes the SIGTERM on to each of them, once.
  supervise_workers &
  pids+=($!)
  say "serving on http://$host:$port; Ctrl-C stops the web server and the workers (Redis and the Docker engine keep running)"
  # If the web server ends (say, the port is taken), or the supervisor exits by itself, stop the rest.
  local ended= rc=0
  wait -n -p ended "${pids[@]}" || rc=$?
  if [ -z "${stopping:-}" ]; then
    say "the $([ "$ended" = "${pids[0]}" ] && echo "web server" || echo "workers' supervisor") stopped (status $rc): stopping the rest"
    stop
    exit $((rc == 0 ? 1 : rc))
  fi
}

# The workers' supervisor, started again if something kills it (SIGKILL, the OOM killer), after a
# pause that doubles while it keeps dying young: the web stays up, and the kernel tells its workers
# to finish the execution in hand and stop (PR_SET_PDEATHSIG) while the new one starts theirs. One
# that exits by itself (a status, not a signal: say, a bad setting) is not: its status ends the run.
supervise_workers() {
  local child= sleeper= rc started pause=1
  trap 'kill -TERM $child $sleeper 2>/dev/null || true; wait $child || true; exit 0' TERM
  while :; do
    started=$SECONDS
    setsid $py manage.py sandbox_workers &
    child=$!
    rc=0
    wait $child || rc=$?
    [ "$rc" -gt 128 ] || exit "$rc"
    if ((SECONDS - started >= 30)); then pause=1; fi
    say "the workers' supervisor was killed (signal $((rc - 128))): starting it again in $pause s"
    sleep "$pause" &
    sleeper=$!
    wait $sleeper || true
    pause=$((pause * 2 > 30 ? 30 : pause * 2))
  done
}

for step in "$@"; do
  case "$step" in
    packages) packages; ! command -v runsc >/dev/null 2>&1 || seccomp_profile ;;
    run) run ;;
    editor) editor ;;
    venv) venv requirements.txt ;;
    venv-test) venv requirements-test.txt ;;
    venv-bench) venv requirements-test.txt bench/requirements.txt ;;
    packages-test) packages postgresql docker-compose runsc chromium chromium-driver; node_packages; seccomp_profile ;;
    packages-bench) packages hey ;;
    services) services ;;
    services-postgres) services --postgres ;;
    stack-images) stack_images ;;
    seccomp-profile) seccomp_profile ;;
    *) say "unknown step $step"; exit 2 ;;
  esac
done
