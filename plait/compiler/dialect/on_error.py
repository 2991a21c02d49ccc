"""A step's `on_error` in the original dialect: whether a failure fails, goes on or jumps; retries; message.

`ErrorRules` holds this part of a step's translation (mixed into `StepRules`); the decisions are
in `plait.compiler.dialect.translate`'s docstring. The original read an `on_error` mapping's keys
by name: an `action` other than `continue` failed (or jumped, with `next`); a failing step got
`retry` retries, or its default of 3 when it set none. plait runs a failing step once unless the
mapping asks for retries (a count, `action: retry`, or a `delay` between them: then 3, the
original's count); `message` is the step's `error_message`.
"""

from __future__ import annotations

from plait.compiler.diagnostics import SourceLoc, did_you_mean
from plait.compiler.dialect.findings import Findings
from plait.compiler.dialect.names import bind_names, fill_defaults, literal
from plait.compiler.dialect.tree import name_list, put
from plait.compiler.loader import YamlMap

__all__ = ["ORIGINAL_RETRIES", "ErrorRules", "action_of"]

_ON_ERROR = ("action", "retry", "delay", "next", "message")
ORIGINAL_RETRIES = 3  # the retries the original gave a failing step that did not set on_error.retry


class ErrorRules(Findings):
    """Translate a step's `on_error` (and its `retry: N`) into plait's policy keys (mixed into `StepRules`).

    It reads `names` and `param_names`, which the workflow's translator sets before steps.
    """

    names: dict[str, str]
    param_names: list[str]

    def _on_error(self, out: YamlMap, raw: YamlMap) -> None:
        """Put `on_error` and the retry policy of `raw` into `out`. Mutates `out`."""
        on_error = raw.get("on_error")
        retry = raw.get("retry")
        if isinstance(retry, int) and not isinstance(retry, bool):
            self._retry(out, raw, retry, 0, raw.value_locs["retry"])
        elif isinstance(retry, YamlMap):
            put(out, "retry", retry, raw, "retry")  # plait's own retry policy
        elif retry is not None:
            self.error(raw.value_locs["retry"], "a step's retry must be a number of retries",
                       "write `on_error: {retry: 3, delay: 1}`")
        if retry is None and not (isinstance(on_error, YamlMap) and _asks_retries(on_error)):
            self.note(raw.loc, "a failing step runs once: the original retried every failing step 3 times "
                               "unless on_error.retry said otherwise", once="retries")
        if on_error is None:
            return
        if not isinstance(on_error, YamlMap):
            given = on_error if isinstance(on_error, str) else None
            if given not in ("fail", "continue"):  # the original read anything else as fail, and so does plait
                self.note(raw.value_locs["on_error"], f"on_error {on_error!r} is read as 'fail', as the original read "
                                                      "it; write `on_error: continue`, or a mapping with action, "
                                                      "retry, delay, next")
            put(out, "on_error", "continue" if given == "continue" else "fail", raw, "on_error")
            if given == "continue":
                put(out, "max_failures", "100%", raw, "on_error")
            return
        for key in on_error:
            if key not in _ON_ERROR:
                self.error(on_error.key_locs[key], f"unknown key '{key}' in on_error",
                           did_you_mean(key, _ON_ERROR) or f"on_error takes: {', '.join(_ON_ERROR)}")
        action = action_of(on_error)
        given = on_error.get("action")
        if given not in (None, "fail", "continue", "next", "retry"):
            self.note(on_error.value_locs["action"], f"on_error.action '{given}' is read as '{action}', as the "
                                                     "original read any action but continue")
        if action == "next" and "next" not in on_error:
            self.error(on_error.value_locs["action"], "on_error.action 'next' needs `next: STEP`")
        else:
            put(out, "on_error", "fail" if action == "fail" else "continue", on_error,
                 "action" if "action" in on_error else "next")
            if action == "continue":
                put(out, "max_failures", "100%", on_error, "action")
            if action == "next":
                put(out, "max_failures", "100%", on_error, "next")
                self.note(on_error.value_locs["next"], f"on_error.next: when this step fails, the steps up to "
                                                       f"'{on_error['next']}' are skipped and it runs, and the run "
                                                       "succeeds, as in the original", once="next")
        asked = "retry" not in on_error and _asks_retries(on_error)
        if asked:  # retries asked for without a count: the original's count, where it was the only one
            self.note(on_error.value_locs["action" if given == "retry" else "delay"],
                      f"on_error {'action: retry' if given == 'retry' else 'delay'} without `retry: N` retries "
                      f"{ORIGINAL_RETRIES} times, the original's default count, then " +
                      ("jumps" if action == "next" else "goes on" if action == "continue" else "fails"))
        if "retry" in on_error or asked:
            count, delay = on_error.get("retry", ORIGINAL_RETRIES), on_error.get("delay", 0)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                count = 0  # the original ran a negative count as 0 retries, and text as its default
                self.note(on_error.value_locs["retry"], f"on_error.retry {on_error['retry']!r} is not a whole number, "
                                                        "0 or more: the step runs once (the original ran a negative "
                                                        "count as none, and text as its default of 3)")
            if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
                self.error(on_error.value_locs["delay"], "on_error.delay must be a number of seconds, 0 or more")
            else:
                self._retry(out, on_error, count, delay, on_error.value_locs["retry" if "retry" in on_error else
                                                                             "action" if given == "retry" else "delay"])
        if "message" in on_error:
            self._message(out, raw, on_error)

    def _message(self, out: YamlMap, raw: YamlMap, on_error: YamlMap) -> None:
        """Put on_error.message as the step's `error_message`, its `error` the original's {step, message}.

        Mutates `out`.
        """
        message = on_error["message"]
        if not isinstance(message, str):
            self.error(on_error.value_locs["message"], "on_error.message must be text (a template may read "
                                                       "`error`: {step, message})")
            return
        names = {**self.names, "error": f"{{'step': {literal(str(raw.get('name')))}, 'message': error.error}}"}
        text = fill_defaults(bind_names(message, names), self.param_names)
        put(out, "error_message", text, on_error, "message")

    def _retry(self, out: YamlMap, where: YamlMap, count: int, delay: float, loc: SourceLoc) -> None:
        policy = YamlMap(loc)
        for key, value in (("max_attempts", count + 1), ("delay", delay), ("backoff", 1), ("jitter", 0),
                           ("retry_on", name_list(["Exception"], loc))):
            policy[key] = value
            policy.key_locs[key] = policy.value_locs[key] = loc
        put(out, "retry", policy, where, "retry")


def _asks_retries(on_error: YamlMap) -> bool:
    """Return True when an on_error mapping asks for retries: a count, `action: retry`, or a delay between them."""
    return "retry" in on_error or on_error.get("action") == "retry" or "delay" in on_error


def action_of(on_error: YamlMap) -> str:
    """Return what an on_error mapping does, as the original read it: continue, next (a jump) or fail."""
    if on_error.get("action") == "continue":
        return "continue"
    return "next" if "next" in on_error or on_error.get("action") == "next" else "fail"
