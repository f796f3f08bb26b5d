"""gunicorn's configuration: `gunicorn --config sandbox_project/gunicorn.py`."""

import os

wsgi_app = "sandbox_project.wsgi"
bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_class = "gthread"
# Requests with ?wait=N hold a thread while they wait (blocked on Redis, no CPU): settings.WAIT_SLOTS
# of these threads may wait, the other 8 serve everything else (bench/wait_capacity.py). Keep
# workers x threads below PostgreSQL's max_connections, less what the sandbox workers use.
threads = int(os.environ.get("WEB_THREADS", "32"))
accesslog = "-"
# Slow or stalled clients lose their connection instead of holding a thread.
timeout = 30
keepalive = 5
limit_request_line = 8190
limit_request_fields = 100
# gunicorn 27's control socket has one default path per user: a second server on the machine (a
# test's, a benchmark's) would take it over. Nothing here uses it.
control_socket_disable = True


def child_exit(server, worker):
    # A dead process's live gauges must leave the multiprocess metrics.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
