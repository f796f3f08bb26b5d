"""A judged execution's comparisons, under a time budget of their own.

Each comparison may take JUDGE_COMPARISON_SECONDS, and all of an execution's together
JUDGE_COMPARISON_TOTAL_SECONDS, outside its tests' time. Only a regex comparison can come near
that (judging.REGEX_INLINE_WORK), and RE2 cannot be interrupted from Python (it releases the GIL,
but a thread cannot be stopped), so a match that might take long runs in a child process, one
for the whole judging, which is killed at its deadline: the worker is then free at once. The small
matches that most comparisons are stay in the worker, where they cost microseconds.

`python -m executions.comparing` is that child: it imports re2 and executions.judging, not Django.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from executions import judging

# Request: pattern and text lengths, then both in UTF-8. Answer: one byte.
HEADER = struct.Struct("<II")
MATCHED, DIFFERENT, INVALID = b"1", b"0", b"e"
# Starting the child (Python and re2) is not the comparison's time, but is bounded too.
START_SECONDS = 30.0


class ComparisonFailed(Exception):
    """The child could not be started or answered nonsense: a fault of the platform's."""


@dataclass
class Comparisons:
    """One judged execution's comparisons: `passed` answers each, or None when its budget ran out."""

    comparison: judging.Comparison
    seconds: float
    total_seconds: float
    spent: float = 0.0
    spending: threading.Lock = field(default_factory=threading.Lock)
    matching: threading.Lock = field(default_factory=threading.Lock)
    matcher: Matcher | None = None

    def passed(self, output: str, expected: str) -> bool | None:
        if self.remaining() <= 0:
            return None
        if self.comparison.work(output, expected) <= judging.REGEX_INLINE_WORK:
            started = time.monotonic()
            try:
                return self.comparison.matches(output, expected)
            finally:
                self.spend(time.monotonic() - started)
        with self.matching:
            # One child for the judging's tests: the time one waits for it is not its own.
            seconds = min(self.seconds, self.remaining())
            if seconds <= 0:
                return None
            if self.matcher is None:
                self.matcher = Matcher.start()
            started = time.monotonic()
            try:
                answer = self.matcher.fullmatch(expected, judging.regex_subject(output), seconds)
            finally:
                self.spend(time.monotonic() - started)
            if answer is None:
                self.matcher = None
            return answer

    def remaining(self) -> float:
        return self.total_seconds - self.spent

    def spend(self, seconds: float) -> None:
        # The tests that run at once add to it from their threads.
        with self.spending:
            self.spent += seconds

    def close(self) -> None:
        with self.matching:
            if self.matcher is not None:
                self.matcher.kill()
                self.matcher = None


class Matcher:
    """The child process that matches: killed (and not reused) when it does not answer in time."""

    def __init__(self, process: subprocess.Popen):
        self.process = process

    @classmethod
    def start(cls) -> Matcher:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        process = subprocess.Popen(
            [sys.executable, "-m", "executions.comparing"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        matcher = cls(process)
        if matcher.read(START_SECONDS) != MATCHED:
            matcher.kill()
            raise ComparisonFailed("the regex matcher did not start")
        return matcher

    def fullmatch(self, pattern: str, text: str, seconds: float) -> bool | None:
        """Whether the pattern matches the whole text; None (and the child killed) past `seconds`."""
        encoded_pattern = pattern.encode("utf-8", errors="surrogatepass")
        encoded_text = text.encode("utf-8", errors="surrogatepass")
        try:
            self.process.stdin.write(HEADER.pack(len(encoded_pattern), len(encoded_text)) + encoded_pattern + encoded_text)
            self.process.stdin.flush()
        except OSError as exc:
            self.kill()
            raise ComparisonFailed(f"the regex matcher went away: {exc}") from exc
        answer = self.read(seconds)
        if answer is None:
            self.kill()
            return None
        if answer not in (MATCHED, DIFFERENT):
            self.kill()
            raise ComparisonFailed(f"the regex matcher answered {answer!r}")
        return answer == MATCHED

    def read(self, seconds: float) -> bytes | None:
        ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, seconds))
        if not ready:
            return None
        return os.read(self.process.stdout.fileno(), 1)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def serve(requests, answers) -> None:
    """The child: answer each request until the worker closes its stdin."""
    answers.write(MATCHED)
    answers.flush()
    while True:
        header = requests.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        pattern_size, text_size = HEADER.unpack(header)
        pattern, text = requests.read(pattern_size), requests.read(text_size)
        try:
            matched = judging.compiled_regex(pattern.decode("utf-8", errors="surrogatepass")).fullmatch(
                text.decode("utf-8", errors="surrogatepass")
            )
        except Exception:
            answers.write(INVALID)
        else:
            answers.write(DIFFERENT if matched is None else MATCHED)
        answers.flush()


if __name__ == "__main__":
    # The worker's signals are its own: a Ctrl-C meant for it does not end the match early.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
