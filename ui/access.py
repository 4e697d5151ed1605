"""Who may reach the app when it has a login.

``AccessGuard`` sits in front of every route of the Gradio app (an ASGI middleware). With a login
configured, a request without a valid session gets:

- ``GET /``: a small page that says 请登录 and holds the login form, nothing else (Gradio's own
  login page carries the whole app config, API names included);
- ``POST /login``: passed to Gradio, unless this client failed too often: after
  ``max_failures`` wrong passwords within ``window`` seconds it is locked out for ``lockout``
  seconds (HTTP 429), and each failure is answered a little later than the one before;
- ``/gradio_api/startup-events`` (Gradio asks it of itself at start): passed through;
- anything else: HTTP 401 ``{"detail": "请登录"}``.

Failures and lock-outs are logged with the client address and user name, never the password.
Without a login the guard lets everything through (the app then listens on 127.0.0.1 only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.cookies import SimpleCookie

log = logging.getLogger(__name__)

LOGIN_PATHS = ("/login", "/login/")
# Gradio calls this itself when it starts (without a session); it only says whether the app's
# start-up events have run, running them once.
OPEN_PATHS = ("/gradio_api/startup-events",)

LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>请登录</title>
<style>
body{font-family:"PingFang SC","Microsoft YaHei","WenQuanYi Zen Hei","Noto Sans CJK SC",sans-serif;background:#f5f7fa;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
form{background:#fff;padding:32px 36px;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);width:300px}
h1{font-size:22px;margin:0 0 20px}label{display:block;margin:12px 0 4px;color:#333}
input{width:100%;box-sizing:border-box;padding:8px;border:1px solid #ccd;border-radius:6px;font-size:15px}
button{margin-top:20px;width:100%;padding:9px;border:0;border-radius:6px;background:#2563eb;color:#fff;font-size:16px}
#msg{color:#c2410c;margin-top:12px;min-height:1.2em}
</style></head><body>
<form id="login"><h1>请登录</h1>
<label for="username">账号</label><input id="username" name="username" autocomplete="username" required>
<label for="password">密码</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">登录</button><div id="msg" role="alert"></div></form>
<script>
document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const msg = document.getElementById("msg");
  msg.textContent = "";
  const r = await fetch("login", {method: "POST", body: new URLSearchParams(new FormData(e.target)),
                                   credentials: "same-origin"});
  if (r.ok) { location.reload(); return; }
  let detail = "账号或密码错误";
  try { const j = await r.json(); if (r.status === 429 && j.detail) detail = j.detail; } catch (_) {}
  msg.textContent = detail;
});
</script></body></html>
"""


@dataclass
class LoginPolicy:
    max_failures: int = 5  # wrong passwords per client ...
    window: float = 600.0  # ... within this many seconds lock it out
    lockout: float = 300.0  # for this many seconds
    delay_step: float = 0.3  # each failure is answered this much later than the one before (at most 3 s)

    @classmethod
    def from_env(cls) -> "LoginPolicy":
        """IPQA_LOGIN_MAX_FAILURES and IPQA_LOGIN_LOCKOUT_SECONDS change the defaults."""
        from corpus.errors import InvalidSetting

        policy = cls()
        for var, attr, kind in (("IPQA_LOGIN_MAX_FAILURES", "max_failures", int),
                                ("IPQA_LOGIN_LOCKOUT_SECONDS", "lockout", float)):
            value = os.environ.get(var, "").strip()
            if not value:
                continue
            try:
                number = kind(value)
            except ValueError:
                number = 0
            if number <= 0:
                raise InvalidSetting(var, value, "应为大于 0 的数字")
            setattr(policy, attr, number)
        return policy


class LoginThrottle:
    """Failed logins per client; thread-safe (requests arrive on the event loop, tests call it directly)."""

    def __init__(self, policy: LoginPolicy | None = None, clock=time.monotonic):
        self.policy = policy or LoginPolicy.from_env()
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def locked_for(self, client: str) -> float:
        """Seconds this client must still wait (0: it may try)."""
        with self._lock:
            return max(0.0, self._locked_until.get(client, 0.0) - self.clock())

    def failed(self, client: str, user: str) -> float:
        """Record a failure; the delay before answering it."""
        now = self.clock()
        with self._lock:
            recent = self._failures[client]
            recent.append(now)
            while recent and recent[0] < now - self.policy.window:
                recent.popleft()
            count = len(recent)
            if count >= self.policy.max_failures:
                self._locked_until[client] = now + self.policy.lockout
                recent.clear()
        if count >= self.policy.max_failures:
            log.warning("login locked out for %s: %d failed logins (last user %r) within %.0f s; locked for %.0f s",
                        client, count, user, self.policy.window, self.policy.lockout)
        else:
            log.warning("failed login from %s for user %r (%d of %d allowed)", client, user, count,
                        self.policy.max_failures)
        return min(3.0, self.policy.delay_step * count)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def _cookies(scope) -> dict[str, str]:
    jar = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is the same as none
                return {}
    return {k: m.value for k, m in jar.items()}


async def _send_body(send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send, status: int, detail: str) -> None:
    await _send_body(send, status, json.dumps({"detail": detail}, ensure_ascii=False).encode(), "application/json")


class AccessGuard:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app, *, throttle: LoginThrottle | None = None):
        self.app = app
        self.throttle = throttle or LoginThrottle()

    @staticmethod
    def _logged_in(gradio_app, scope) -> bool:
        cookies = _cookies(scope)
        cookie_id = getattr(gradio_app, "cookie_id", "")
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return bool(token) and token in getattr(gradio_app, "tokens", {})

    async def __call__(self, scope, receive, send):
        gradio_app = scope.get("app")
        if scope["type"] not in ("http", "websocket") or getattr(gradio_app, "auth", None) is None:
            return await self.app(scope, receive, send)
        if self._logged_in(gradio_app, scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 4401})
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if path in LOGIN_PATHS and method == "POST":
            return await self._login(scope, receive, send)
        if path == "/" and method in ("GET", "HEAD"):
            return await _send_body(send, 200, LOGIN_PAGE.encode(), "text/html; charset=utf-8")
        return await _send_json(send, 401, "请登录")

    async def _login(self, scope, receive, send):
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.throttle.locked_for(client)
        if wait > 0:
            log.warning("login refused for %s: locked out for %.0f s more", client, wait)
            return await _send_json(send, 429, f"登录失败次数过多，请 {max(1, round(wait / 60))} 分钟后再试")
        body = bytearray()
        more = True
        while more:  # read the form to learn the user name for the log; then replay it to Gradio
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        user = _form_user(bytes(body))

        async def replay():
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        async def watch(message):
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    await asyncio.sleep(self.throttle.failed(client, user))
                else:
                    self.throttle.succeeded(client)
            await send(message)

        await self.app(scope, replay, watch)


def _form_user(body: bytes) -> str:
    from urllib.parse import parse_qs

    try:
        return parse_qs(body.decode("utf-8", errors="replace")).get("username", [""])[0][:64]
    except Exception:
        return ""
