"""The original engine's `http.request` and `notify` kinds, with its inputs and its results.

Both use the standard library's `urllib`, as the original did, so a file that called an API or a
webhook runs with no new dependency. Decisions:
- `http.request` takes `url`, `method`, `headers`, `body` (a mapping is sent as JSON), `timeout`,
  `token`, `auth` (bearer, api_key, basic), `verify_ssl` and `retry` ({max_attempts, delay,
  status_codes}), and returns `{status_code, headers, body, json}`. An HTTP error status fails
  the node with `HTTPError` (plait's retry policy then decides, as for any error).
- `notify` sends to a `webhook`, `slack`, `log` or `file` channel and returns `{channel,
  status: sent, message[, status_code]}`. A `file` (and a `log` channel's `file`) is written inside
  the workspace: the original wrote it relative to its own current folder, which plait never
  changes (a note says so where a file names one).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any

from plait.tasks.base import TaskContext
from plait.tasks.original import register_task

__all__ = ["http_request", "notify"]

_RETRY_CODES = (429, 500, 502, 503, 504)


def _auth_headers(headers: dict[str, str], auth: dict[str, Any] | None, token: str | None) -> dict[str, str]:
    """Return `headers` with the original's `token` shorthand and `auth` config applied."""
    headers = dict(headers)
    if token:
        headers.setdefault("Authorization", f"Bearer {token}")
    if not auth:
        return headers
    kind = str(auth.get("type", "")).lower()
    if kind == "bearer":
        if "token_env" in auth:
            value = os.environ.get(auth["token_env"])
            if not value:
                raise ValueError(f"Bearer auth requires environment variable '{auth['token_env']}' "
                                 "but it is not set or is empty.")
        elif "token" in auth:
            value = auth["token"]
        else:
            raise ValueError("Bearer auth requires either 'token' or 'token_env' in the auth config.")
        headers["Authorization"] = f"Bearer {value}"
    elif kind == "api_key":
        if "key" not in auth:
            raise ValueError("api_key auth requires 'key' in the auth config.")
        headers[auth.get("header", "X-API-Key")] = auth["key"]
    elif kind == "basic":
        if "username" not in auth or "password" not in auth:
            raise ValueError("basic auth requires both 'username' and 'password' in the auth config.")
        pair = f"{auth['username']}:{auth['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    else:
        raise ValueError(f"Unsupported auth type: '{kind}'. Supported types: bearer, api_key, basic.")
    return headers


def _send(url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float,
          context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return response.status, dict(response.headers), response.read().decode("utf-8")


@register_task("http.request")
def http_request(url: str, method: str = "GET", headers: dict | None = None, body: Any = None,
                 timeout: float = 30, token: str | None = None, auth: dict | None = None,
                 verify_ssl: bool = True, retry: dict | None = None) -> dict[str, Any]:
    """Make an HTTP request; return {status_code, headers, body, json}."""
    headers = _auth_headers(headers or {}, auth, token)
    data = None
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.encode("utf-8")
    context = None
    if not verify_ssl:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    retry = retry or {}
    attempts, delay = int(retry.get("max_attempts", 1)), float(retry.get("delay", 1.0))
    codes = list(retry.get("status_codes", _RETRY_CODES))
    for attempt in range(1, attempts + 1):
        try:
            status, response_headers, text = _send(url, method, headers, data, timeout, context)
            break
        except urllib.error.HTTPError as err:
            if err.code not in codes or attempt == attempts:
                raise
        except OSError:
            if attempt == attempts:
                raise
        time.sleep(delay)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return {"status_code": status, "headers": response_headers, "body": text, "json": parsed}


def _webhook(url: str, payload: Any, method: str = "POST", headers: dict | None = None) -> int:
    status, _, _ = _send(url, method, {"Content-Type": "application/json", **(headers or {})},
                         json.dumps(payload).encode("utf-8"), 30)
    return status


@register_task()
def notify(ctx: TaskContext, context: dict[str, Any], channel: str = "", message: Any = "", **options: Any) -> dict:
    """Send `message` to a webhook, Slack, the log or a file; return {channel, status, message[, status_code]}."""
    text = str(message)
    extra: dict[str, Any] = {}
    stamp = datetime.now(timezone.utc).isoformat()
    if channel == "webhook":
        if not options.get("url"):
            raise ValueError("webhook channel requires 'url'.")
        payload = options.get("payload")
        extra["status_code"] = _webhook(options["url"], payload if payload is not None else {"text": text},
                                        options.get("method", "POST"), options.get("headers"))
    elif channel == "slack":
        if not options.get("webhook_url"):
            raise ValueError("slack channel requires 'webhook_url'.")
        who = {"username": options.get("username", "yaml-workflow"),
               "icon_emoji": options.get("icon_emoji", ":robot_face:")}
        color = options.get("color")
        payload = ({**who, "attachments": [{"color": color, "text": text, "fallback": text}]} if color
                   else {"text": text, **who})
        extra["status_code"] = _webhook(options["webhook_url"], payload)
    elif channel == "log":
        level = str(options.get("level", "info"))
        ctx.logger.log(level.upper() if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO", text)
        if options.get("file"):
            with ctx.path(options["file"]).open("a", encoding="utf-8") as out:
                out.write(f"[{stamp}] [{level.upper()}] {text}\n")
    elif channel == "file":
        if not options.get("file"):
            raise ValueError("file channel requires 'file'.")
        path = ctx.path(options["file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if options.get("append", True) else "w", encoding="utf-8") as out:
            if options.get("format", "jsonl") == "jsonl":
                name = (context.get("workflow") or {}).get("name") or ""
                out.write(json.dumps({"timestamp": stamp, "message": text, "workflow": name}) + "\n")
            else:
                out.write(f"[{stamp}] {text}\n")
    else:
        raise ValueError(f"Unsupported notification channel: '{channel}'. "
                         "Supported channels: webhook, log, slack, file.")
    return {"channel": channel, "status": "sent", "message": text, **extra}
