"""Open a page in real headless Chromium (Debian's `chromium`, installed by stack/stack.sh deps) and report what a
user's browser would see: console errors, uncaught exceptions, failed loads, every request made, the DOM, and a
screenshot.

It speaks the DevTools protocol over `--remote-debugging-pipe` (JSON messages separated by NUL bytes on file
descriptors 3 and 4), so it needs no websocket client and no open port.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PageVisit:
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, failed loads
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, the page itself included
    values: dict[str, Any] = field(default_factory=dict)  # expression -> its value, evaluated after load
    screenshot: bytes = b""  # PNG of the viewport


def browser() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise AssertionError("chromium is not installed: run `make up` (stack/stack.sh deps installs it as root)")
    return found


def visit(page: Path, profile: Path, expressions: list[str], width: int = 1200, height: int = 1600,
          timeout: float = 60) -> PageVisit:
    """Load `page` (a local file), evaluate `expressions` in it, take a screenshot, close the browser."""
    to_browser, from_browser = os.pipe(), os.pipe()

    def wire_pipes() -> None:  # in the child: its fd 3 reads what we send, its fd 4 writes what we read
        ours_in, ours_out = os.dup(to_browser[0]), os.dup(from_browser[1])
        os.dup2(ours_in, 3)
        os.dup2(ours_out, 4)

    profile.mkdir(parents=True, exist_ok=True)
    with open(profile / "chromium.log", "wb") as log:  # its own chatter, for a failing test to look at
        process = subprocess.Popen(
            [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--no-default-browser-check", "--hide-scrollbars", f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=wire_pipes, close_fds=False, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    os.close(to_browser[0])
    os.close(from_browser[1])
    session = _Session(to_browser[1], from_browser[0], time.monotonic() + timeout)
    try:
        return _visit(session, page, expressions, width, height)
    finally:
        try:
            session.call("Browser.close")
        except (OSError, EOFError, TimeoutError, AssertionError):
            process.kill()
        process.wait(timeout=30)
        os.close(to_browser[1])
        os.close(from_browser[0])


def _visit(session: _Session, page: Path, expressions: list[str], width: int, height: int) -> PageVisit:
    target = session.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session.id = session.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        session.call(f"{domain}.enable")
    session.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    session.call("Page.navigate", {"url": page.resolve().as_uri()})
    session.wait_for("Page.loadEventFired")
    result = PageVisit()
    result.values = {expression: session.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
                     ["result"].get("value") for expression in expressions}
    result.screenshot = base64.b64decode(session.call("Page.captureScreenshot", {"format": "png"})["data"])
    for event in session.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            result.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            result.errors.append(f"exception: {details.get('exception', {}).get('description') or details['text']}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            result.errors.append(f"console.{params['type']}: {[arg.get('value') for arg in params['args']]}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            result.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}".strip())
    return result


class _Session:
    """DevTools protocol calls over the pipe; events that arrive meanwhile are kept in `events`."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float) -> None:
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.id: str | None = None
        self.events: list[dict] = []
        self.buffer = b""
        self.last_id = 0

    def call(self, method: str, params: dict | None = None) -> dict:
        self.last_id += 1
        message: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if self.id is not None:
            message["sessionId"] = self.id
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self.last_id:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, event: str) -> None:
        while not any(seen.get("method") == event for seen in self.events):
            self.events.append(self._read())

    def _read(self) -> dict:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed its DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)
