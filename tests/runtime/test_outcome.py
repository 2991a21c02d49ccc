"""The one error record, the retry decision and the retry delay, as pure functions."""

from __future__ import annotations

import pickle
import random

import pytest

from plait.compiler import RetryPolicy
from plait.runtime.backends import WorkerCrashed
from plait.runtime.outcome import error_record, is_retryable, retry_delay
from plait.runtime.run import describe
from plait.tasks.shell import CommandFailed

DEFAULT = RetryPolicy()


class Transient(RuntimeError):
    """A user's own exception class, retried by name."""


@pytest.mark.parametrize(("exc", "retryable"), [
    (OSError("disk"), True),
    (TimeoutError("slow"), True),
    (FileNotFoundError("gone"), True),  # a subclass of OSError
    (ConnectionResetError("reset"), True),  # a subclass of a subclass
    (WorkerCrashed("died"), True),
    (ValueError("bad"), False),
    (KeyError("k"), False),
    (RuntimeError("no"), False),
    (CommandFailed(1, "err"), False),
])
def test_default_policy_retries_oserror_and_timeouterror_and_their_subclasses(exc: Exception,
                                                                               retryable: bool) -> None:
    assert is_retryable(DEFAULT, exc) is retryable


def test_retry_on_names_replace_the_defaults_and_match_base_classes() -> None:
    policy = RetryPolicy(retry_on=("LookupError", "Transient"))
    assert {type(e).__name__: is_retryable(policy, e) for e in
            (KeyError("k"), IndexError("i"), Transient("t"), OSError("o"), ValueError("v"))} == {
        "KeyError": True, "IndexError": True, "Transient": True, "OSError": False, "ValueError": False}


def test_retry_on_exit_codes_make_a_command_failure_retryable() -> None:
    policy = RetryPolicy(retry_on_exit_codes=(75,))
    assert [is_retryable(policy, CommandFailed(code, "")) for code in (75, 1, 74)] == [True, False, False]


def test_error_record_has_the_one_shape() -> None:
    record = error_record(FileNotFoundError("no such file: a.txt"), node="load[a]", item={"path": "a.txt"},
                          attempt=2, policy=DEFAULT)
    assert record == {"success": False, "error": "no such file: a.txt", "error_type": "FileNotFoundError",
                      "item": {"path": "a.txt"}, "node": "load[a]", "attempt": 2, "retryable": True}


def test_error_record_of_a_command_carries_exit_code_and_stderr_tail() -> None:
    exc = pickle.loads(pickle.dumps(CommandFailed(3, "first\ndisk full")))  # as it crosses a process pool
    record = error_record(exc, node="sh", item=None, attempt=1, policy=RetryPolicy(retry_on_exit_codes=(3,)))
    assert record == {"success": False, "error": "command exited with code 3: disk full",
                      "error_type": "CommandFailed", "item": None, "node": "sh", "attempt": 1, "retryable": True,
                      "exit_code": 3, "stderr_tail": "first\ndisk full"}


def test_error_record_of_an_exception_without_a_message_names_its_type() -> None:
    record = error_record(KeyError(), node="n", item=None, attempt=1, policy=DEFAULT)
    assert (record["error"], record["error_type"]) == ("KeyError", "KeyError")


def test_retry_delay_grows_by_backoff_and_stops_at_max_delay() -> None:
    policy = RetryPolicy(delay=0.5, backoff=3.0, max_delay=10.0, jitter=0.0)
    rng = random.Random(0)
    assert [retry_delay(policy, attempt, rng) for attempt in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]


def test_retry_delay_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(delay=1.0, backoff=1.0, jitter=0.25)
    rng = random.Random(42)
    delays = [retry_delay(policy, 1, rng) for _ in range(500)]
    assert (min(delays) >= 0.75, max(delays) <= 1.25, len(set(delays)) > 400) == (True, True, True)


def test_describe_says_what_a_run_will_do() -> None:
    assert describe(1204, {"done": 1180, "failed": 20, "changed": 4}) == \
        "1,204 nodes: 1,180 done, 20 to retry (failed), 4 changed"
    assert describe(3, {"new": 2, "pending": 1}) == "3 nodes: 2 new, 1 not run yet"
    assert describe(0, {}) == "0 nodes: nothing to do"
