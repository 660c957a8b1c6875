#!/usr/bin/env python3
"""Headless Chromium as an outside WebAuthn client, driven over the DevTools protocol.

Standard library only. Usage:

    chromium_webauthn.py --chromium /usr/bin/chromium --workdir DIR --pages DIR

Starts two HTTP servers on 127.0.0.1 (origins `a` and `b`, both reached as
`http://localhost:<port>`, a secure context) serving the files of `--pages`, and Chromium
headless with `--remote-debugging-pipe` (fd 3: commands to Chromium, fd 4: its replies and
events; every message is one JSON text followed by a NUL byte). One page target is attached
(flat session), `WebAuthn.enable`d, and given a virtual CTAP2.1 USB authenticator with resident
keys, user verification (verified), PRF and automatic presence.

Prints one line `{"ready": true, "ports": {"a": PORT, "b": PORT}, "authenticator": ID}` and then
answers one JSON line on stdin with one JSON line on stdout:

    {"origin": "a"|"b", "fn": NAME, "args": [...]}
        -> {"ok": true, "value": ...} | {"ok": false, "name": DOMException name, "message": ...}
        runs `kg[NAME](...args)` of page.html (awaited) at that origin, navigating there first;
    {"credentials": true} -> {"ok": true, "value": [Credential, ...]}   (WebAuthn.getCredentials)
    {"quit": true}        -> ends (so does end of input).

Chromium and its children are ended on every exit path (the caller also kills the process group).
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import http.server
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time

CALL_TIMEOUT_S = 20.0


class Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the pages directory without logging to stderr."""

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def serve(pages: str) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(Quiet, directory=pages)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class DevTools:
    """The DevTools protocol over Chromium's debugging pipe."""

    def __init__(self, chromium: str, workdir: str):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        profile = os.path.join(workdir, "profile")
        os.makedirs(profile, exist_ok=True)
        self.profile = profile
        args = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--remote-debugging-pipe",
            "--host-resolver-rules=MAP localhost 127.0.0.1",
            f"--user-data-dir={profile}",
            "about:blank",
        ]

        def child_fds():
            # The pipe ends become fds 3 (Chromium reads) and 4 (Chromium writes).
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3, inheritable=True)
            os.dup2(high_w, 4, inheritable=True)

        self.log = open(os.path.join(workdir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            preexec_fn=child_fds,
            close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def close(self) -> None:
        """Ends Chromium: a polite Browser.close, then SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            try:
                self.send("Browser.close", session=None, wait=False)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        for fd in (self.to_chrome, self.from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()

    def read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from Chromium")
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed its debugging pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params=None, session="page", wait=True, timeout=CALL_TIMEOUT_S):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session == "page" and self.session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        if not wait:
            return None
        deadline = time.monotonic() + timeout
        while True:
            reply = self.read_message(deadline)
            if reply.get("id") != self.next_id:
                continue  # an event, or a reply to a message sent without waiting
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply.get("result", {})

    def attach_page(self) -> None:
        targets = self.send("Target.getTargets", session=None)["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        if pages:
            target = pages[0]["targetId"]
        else:
            target = self.send("Target.createTarget", {"url": "about:blank"}, session=None)[
                "targetId"
            ]
        self.session = self.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=None
        )["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        # WebAuthn needs a focused document; a headless page has none unless emulated.
        self.send("Emulation.setFocusEmulationEnabled", {"enabled": True})

    def evaluate(self, expression: str):
        result = self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": True,
            },
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page exception: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                ready = self.evaluate(
                    f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
                    " && typeof kg === 'object'"
                )
            except RuntimeError:
                ready = False  # the context was replaced while evaluating
            if ready:
                return
            time.sleep(0.02)
        raise TimeoutError(f"page {url} did not load")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--pages", required=True)
    opts = parser.parse_args()

    servers = {name: serve(opts.pages) for name in ("a", "b")}
    ports = {name: s.server_address[1] for name, s in servers.items()}
    tools = DevTools(opts.chromium, opts.workdir)

    def stop(signum, _frame):
        tools.close()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        tools.attach_page()
        tools.send("WebAuthn.enable", {"enableUI": False})
        authenticator = tools.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "ctap2Version": "ctap2_1",
                    "transport": "usb",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "hasPrf": True,
                    "hasLargeBlob": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )["authenticatorId"]
        print(json.dumps({"ready": True, "ports": ports, "authenticator": authenticator}), flush=True)
        current = None
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            if request.get("quit"):
                break
            if request.get("credentials"):
                value = tools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
                print(json.dumps({"ok": True, "value": value["credentials"]}), flush=True)
                continue
            origin = request["origin"]
            if current != origin:
                tools.navigate(f"http://localhost:{ports[origin]}/page.html")
                current = origin
            call = f"kg.run({json.dumps(request['fn'])}, {json.dumps(request.get('args', []))})"
            print(json.dumps(tools.evaluate(call)), flush=True)
    finally:
        tools.close()
        for server in servers.values():
            server.shutdown()
        # The profile goes with Chromium, also when the caller died before it could clean up.
        shutil.rmtree(tools.profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
