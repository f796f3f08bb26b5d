"""Sum a py-spy profile of a live web worker by the parts of a submission.

    .venv/bin/python bench/ingest.py --database postgres &        # in one terminal; then, while it runs:
    ss -ltnp | grep :8100                                          # a gunicorn worker's pid
    .venv/bin/py-spy record --format raw -o /tmp/web.txt --pid PID --duration 20 --rate 100 --nonblocking
    .venv/bin/python bench/pyspy_summary.py /tmp/web.txt

Shares are of the samples in which a thread was not idle (waiting on a socket may count as busy),
so they show where a request's threads spend their time, not CPU alone; bench/profile_ingest.py
gives the CPU side.
"""

from __future__ import annotations

import sys
from collections import Counter

# The first category whose marker appears in a stack takes the sample.
CATEGORIES = [
    ("authentication (ApiKey.find: one SELECT)", ["authenticate ("]),
    ("admission script and Redis, connection set-up included", ["enqueue (executions/submissions.py"]),
    ("ORM insert and its transaction", ["_insert (", "django/db/transaction", "save ("]),
    ("the rest of submissions.submit (checks, log line)", ["submit (executions/submissions.py"]),
    ("rendering the response", ["render ("]),
    ("Django, DRF and middleware around them", ["get_response (", "handlers/wsgi.py"]),
    ("gunicorn: HTTP parsing, writing, access log, poller", ["gunicorn"]),
]


def main() -> None:
    totals: Counter[str] = Counter()
    samples = 0
    for line in open(sys.argv[1]):
        stack, _, count = line.rstrip().rpartition(" ")
        samples += int(count)
        name = next((name for name, markers in CATEGORIES if any(m in stack for m in markers)), "other")
        totals[name] += int(count)
    print(f"{samples} samples\n\n| part | share |\n| --- | --- |")
    for name, count in totals.most_common():
        print(f"| {name} | {count / samples:.0%} |")


if __name__ == "__main__":
    main()
