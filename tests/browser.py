"""Open a page in headless Chromium and see what a person would: the DevTools protocol over a pipe.

Chromium started with `--remote-debugging-pipe` reads DevTools commands from its file descriptor 3
and writes answers and events to 4, each message JSON ended by a NUL byte (the transport Puppeteer's
`pipe: true` uses). That needs no port (nothing to race for, nothing to find in stderr), no
websocket library and no driver binary, and it ends when the browser does. A reader thread turns
the stream into messages; every wait is for a message, with a long guard against a browser that
hangs (a deadlock guard, never a timing assumption).

`Page.open` loads a URL and waits for its load event, collecting on the way every console message,
uncaught exception, log entry and network request; `Page.screenshot` captures the whole page as PNG.

Run as a script to take a picture of a page and print what loading it cost (docs/report.md's
screenshots and the report's row of `python -m benchmarks` come from here):

    python tests/browser.py runs/x/report.html shot.png [--width 1280] [--height 900] [--full-page]

It prints {"timings": {dom_ready, load, first_paint} (ms from the start of navigation), "problems":
[...], "requests": [...]} and exits 0, or 3 when no Chromium is installed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["FLAGS", "Chromium", "Page", "chromium_path"]

# What works on this machine (a 2-core container, root, no GPU, no network): no sandbox (root), no
# GPU, and nothing that phones home; a fresh profile each time, so no state leaks between runs.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--hide-scrollbars")
GUARD = 120.0  # seconds without any answer before a browser is taken to hang
NO_BROWSER = 3  # the script's exit code when no Chromium is installed


# Puts the two pipe ends at 3 and 4 and becomes the browser (dash's redirections take one-digit fds only).
_TRAMPOLINE = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); os.dup2(r, 3); os.dup2(w, 4); "
               "os.close(r); os.close(w); os.execv(sys.argv[3], sys.argv[3:])")


def chromium_path() -> str | None:
    """Return the Chromium program (Debian's `chromium`, or a Chrome), or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or stopped answering."""


class Chromium:
    """A headless Chromium process driven over the DevTools pipe; use as a context manager."""

    def __init__(self, program: str | None = None, width: int = 1280, height: int = 900):
        self.program = program or chromium_path()
        if self.program is None:
            raise BrowserError("no Chromium found: install Debian's `chromium` package (apt-get install chromium)")
        self.width, self.height = width, height
        self._ids = itertools.count(1)
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}  # sessionId -> its events, in order
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="plait-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child must see the pipe at 3 and 4 exactly: move both far above them first, so that
        # putting one in place cannot overwrite the other.
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 100)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 100)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        command = [self.program, *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
                   f"--window-size={self.width},{self.height}", "about:blank"]
        self.process = subprocess.Popen([sys.executable, "-c", _TRAMPOLINE, str(high_r), str(high_w), *command],
                                        pass_fds=(high_r, high_w), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(high_r)
        os.close(high_w)
        self._reader = threading.Thread(target=self._read, name="chromium-pipe", daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(BrowserError):
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=10)
        os.close(self._from_browser)
        self._profile.cleanup()

    def _read(self) -> None:
        """Split the browser's stream into messages: answers to their caller, events to their session's list."""
        pending = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                break
            pending += chunk
            *messages, pending = pending.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                with self._lock:
                    if "id" in message:
                        box = self._answers.pop(message["id"], None)
                        if box is not None:
                            box.put(message)
                    else:
                        self._events.setdefault(message.get("sessionId", ""), []).append(message)
                        self._arrived.notify_all()
        with self._lock:
            for box in self._answers.values():
                box.put({"error": {"message": "the browser closed its pipe"}})
            self._answers.clear()
            self._arrived.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = GUARD) -> dict[str, Any]:
        """Send one command and return its result. Raises BrowserError for an error or no answer."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        box: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        with self._lock:
            self._answers[number] = box
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        try:
            answer = box.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"Chromium gave no answer to {method} in {timeout:g} s") from None
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def wait_event(self, session: str, method: str, after: int = 0, timeout: float = GUARD) -> int:
        """Wait for the session's first `method` event at index `after` or later; return its index."""
        with self._arrived:
            while True:
                events = self._events.get(session, [])
                for i in range(after, len(events)):
                    if events[i]["method"] == method:
                        return i
                if self.process.poll() is not None:
                    raise BrowserError(f"Chromium exited ({self.process.returncode}) before {method}")
                if not self._arrived.wait(timeout):
                    raise BrowserError(f"no {method} from Chromium in {timeout:g} s")

    def events(self, session: str) -> list[dict[str, Any]]:
        """Return a copy of the session's events so far."""
        with self._lock:
            return list(self._events.get(session, []))

    def page(self) -> Page:
        """Open a new tab, attached and listening to its console, log, network and load events."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session=session)
        return Page(self, session)


class Page:
    """One tab: open a URL, read its DOM, take its picture, and list what went wrong while it loaded."""

    def __init__(self, browser: Chromium, session: str):
        self.browser, self.session = browser, session

    def open(self, url: str) -> None:
        """Load `url`; return once its load event fired and a frame has been painted."""
        start = len(self.browser.events(self.session))
        answer = self.browser.call("Page.navigate", {"url": url}, self.session)
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")
        self.browser.wait_event(self.session, "Page.loadEventFired", after=start)
        self.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # painted

    def evaluate(self, expression: str) -> Any:
        """Return the value of a JavaScript expression in the page (awaited when it is a promise)."""
        answer = self.browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                        "awaitPromise": True}, self.session)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} raised: {answer['exceptionDetails'].get('text')}")
        return answer["result"].get("value")

    def problems(self) -> list[str]:
        """Return the console errors and warnings, uncaught exceptions and error log entries so far."""
        found = []
        for event in self.browser.events(self.session):
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                entry = params["entry"]
                found.append(f"log {entry['level']} ({entry.get('source')}): {entry.get('text')}")
        return found

    def requests(self) -> list[str]:
        """Return the URL of every request the page made, in order (the page itself first)."""
        return [e["params"]["request"]["url"] for e in self.browser.events(self.session)
                if e["method"] == "Network.requestWillBeSent"]

    def timings(self) -> dict[str, float]:
        """Return milliseconds from the start of navigation to DOM ready, load end and first contentful paint."""
        return self.evaluate("""(() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const paint = performance.getEntriesByName('first-contentful-paint')[0];
            return {dom_ready: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                    first_paint: paint ? paint.startTime : null};
        })()""")

    def picture(self, png: bytes) -> dict[str, float]:
        """Decode a PNG with the browser's own decoder; return its width, height, distinct colours, and the
        share of pixels unlike the top-left one (0 for a blank picture)."""
        data = json.dumps(base64.b64encode(png).decode())
        return self.evaluate(f"""(async () => {{
            const img = new Image();
            img.src = 'data:image/png;base64,' + {data};
            await img.decode();
            const canvas = document.createElement('canvas');
            canvas.width = img.width; canvas.height = img.height;
            const g = canvas.getContext('2d');
            g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, img.width, img.height).data;
            const first = (d[0] << 16) | (d[1] << 8) | d[2];
            const colours = new Set();
            let unlike = 0;
            for (let i = 0; i < d.length; i += 4) {{
                const v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
                colours.add(v);
                if (v !== first) unlike++;
            }}
            return {{width: img.width, height: img.height, colours: colours.size, unlike: unlike / (d.length / 4)}};
        }})()""")

    def screenshot(self, full_page: bool = False) -> bytes:
        """Return a PNG of the viewport, or of the whole page's height with `full_page`."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.browser.call("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.browser.call("Page.captureScreenshot", params, self.session)["data"]
        return base64.b64decode(data)


def main(argv: list[str] | None = None) -> int:
    """Take a picture of a page; print its load timings, problems and requests as JSON."""
    parser = argparse.ArgumentParser(description="Open a page in headless Chromium, save a PNG, print timings.")
    parser.add_argument("page", type=Path, help="an HTML file")
    parser.add_argument("png", type=Path, nargs="?", help="where to write the screenshot")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--full-page", action="store_true", help="the whole page, not only the first screen")
    args = parser.parse_args(argv)
    if chromium_path() is None:
        print("no Chromium found: install Debian's `chromium` package (apt-get install chromium)", file=sys.stderr)
        return NO_BROWSER
    with Chromium(width=args.width, height=args.height) as browser:
        page = browser.page()
        page.open(args.page.resolve().as_uri())
        found = {"timings": page.timings(), "problems": page.problems(), "requests": page.requests()}
        if args.png:
            args.png.write_bytes(page.screenshot(full_page=args.full_page))
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
