"""`writeit web`: the TUI in a browser, served by textual-serve.

Each browser tab that connects gets its own WriteIt TUI process (textual-serve runs the
app with its web driver and relays the screen over a WebSocket). The page and the
WebSocket hold everything the writer's runs hold, so the server guards them like
`writeit serve` guards its API (server/security.py), adapted to a page a person opens:

- Host: only this machine's names (or configured ones); a page on evil.example whose
  DNS name was pointed at 127.0.0.1 (DNS rebinding) gets a 400.
- Origin: browsers name the page behind every WebSocket and cross-site request. Only
  this server's own origin, port included, may open the WebSocket: cookies do not care
  about ports, so a page served by another program on localhost would otherwise ride on
  the writer's cookie.
- Token: the server token (`writeit serve --show-token`). The URL printed at start
  carries it once (``/?token=…``); the server answers with a cookie (HttpOnly,
  SameSite=Strict, named after the port) and a redirect to ``/``, so the token leaves
  the address bar and the history. Every other request needs the cookie. Without it the
  page says how to get in. aiohttp's access log never shows a ``token=`` value.

Stopping the server (Ctrl+C) tells every TUI process to quit as Q does: their streams
are stopped and saved before they exit.

The same module is the TUI process's entry point (`python -m writeit.web`), where the
app treats textual-serve's "quit" (a closed tab, the server stopping) and SIGINT like Q.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from writeit import __version__
from writeit.errors import InvalidInput
from writeit.server.security import (
    LOOPBACK_NAMES,
    exposed,
    host_name,
    normalise_host,
    redact_tokens,
)

DEFAULT_PORT = 8001  # beside `writeit serve`'s 8000
SHUTDOWN_SECONDS = 10.0  # for the TUI processes to save their streams; then they are killed
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebServer(Server):
    """textual-serve's server with WriteIt's guard, page and orderly shutdown."""

    def __init__(
        self,
        command: str,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        super().__init__(command, host=host, port=port, title="WriteIt")
        self.token = token
        self.allowed_hosts = LOOPBACK_NAMES | {normalise_host(h) for h in allowed_hosts if h}
        self.cookie = f"writeit_web_{port}"  # cookies ignore ports: one name per server
        self.services: set[AppService] = set()

    @property
    def start_url(self) -> str:
        """The URL to open, carrying the token once."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/?{urlencode({'token': self.token})}"

    # --- the guard -------------------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        app.on_shutdown.append(self._stop_apps)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = self._check_host(request) or self._check_origin(request)
        if refused is not None:
            return refused
        given = request.query.get("token")
        if given is not None and request.path == "/":
            return self._sign_in(request, given)
        if not self._valid(request.cookies.get(self.cookie, "")):
            return _page(401, "Sign in to WriteIt", _SIGN_IN)
        return await handler(request)

    def _check_host(self, request: web.Request) -> web.Response | None:
        raw = request.headers.get("Host", "")
        if host_name(raw) in self.allowed_hosts:
            return None
        return _page(
            400,
            "Host not allowed",
            f"<p>WriteIt answers only to this machine's own names, not {html.escape(raw)!r}.</p>"
            f"<p>Open <code>http://127.0.0.1:{self.port}/</code> instead.</p>",
        )

    def _check_origin(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        parts = urlsplit(origin.strip().lower())
        name = host_name(parts.netloc) if parts.scheme in ("http", "https") else None
        if name in self.allowed_hosts and parts.port == self.port:
            return None
        return _page(
            403,
            "Page not allowed",
            f"<p>Only pages served by this WriteIt may use it, not {html.escape(origin)!r}.</p>",
        )

    def _valid(self, given: str) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.token.encode())

    def _sign_in(self, request: web.Request, given: str) -> web.StreamResponse:
        """The token from the printed URL becomes a cookie, and leaves the address bar."""
        if not self._valid(given):
            return _page(401, "Wrong token", _WRONG_TOKEN + _SIGN_IN)
        kept = [(key, value) for key, value in request.query.items() if key != "token"]
        response = web.HTTPSeeOther("/" + (f"?{urlencode(kept)}" if kept else ""))
        response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
        return response

    # --- the page and the TUI processes ------------------------------------------------------

    async def handle_index(self, request: web.Request) -> web.Response:
        """The terminal page; its WebSocket goes to the name the browser used (a cookie
        set for 127.0.0.1 is not sent to localhost)."""
        font_size = _int(request.query.get("fontsize", ""), 16)
        body = _TERMINAL.format(  # the page adds ?width=…&height=… to the socket's URL
            static=f"http://{request.host}/static/",
            socket=html.escape(f"ws://{request.host}/ws"),
            font_size=font_size,
            version=__version__,
        )
        return web.Response(text=body, content_type="text/html", headers=_NO_STORE)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One TUI process per connection, as textual-serve does, but known to the server
        so stopping it can ask each to quit and save."""
        websocket = web.WebSocketResponse(heartbeat=15, max_msg_size=1 << 20)
        await websocket.prepare(request)
        service = AppService(
            self.command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,
            download_manager=self.download_manager,
            debug=self.debug,
        )
        width = _int(request.query.get("width", ""), 80)
        height = _int(request.query.get("height", ""), 24)
        self.services.add(service)
        try:
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            await websocket.close()
        finally:
            self.services.discard(service)
            await service.stop()
        return websocket

    async def _stop_apps(self, app: web.Application) -> None:
        """Ask every TUI process to quit as Q does (streams stopped and saved)."""
        if self.services:
            print(
                f"Stopping {len(self.services)} WriteIt session(s); saving their streams…",
                flush=True,
            )
        stopping = asyncio.gather(*(s.stop() for s in list(self.services)), return_exceptions=True)
        try:
            await asyncio.wait_for(stopping, SHUTDOWN_SECONDS)
        except TimeoutError:  # a session that cannot save in time must not keep us up
            for service in self.services:
                process = service._process  # textual-serve keeps no public handle
                if process is not None and process.returncode is None:
                    process.kill()

    # --- running -----------------------------------------------------------------------------

    async def on_startup(self, app: web.Application) -> None:
        """Nothing: textual-serve prints its banner here, before the socket listens;
        `_serve` prints the address once it does."""

    def serve(self, debug: bool = False) -> None:
        self.debug = debug
        self.initialize_logging()
        mask_tokens()
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        """Listen, then print the URL (first line: a client can connect once it shows),
        and run until SIGINT or SIGTERM."""
        runner = web.AppRunner(await self._make_app(), shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, self.host, self.port).start()
            except OSError as error:
                raise InvalidInput(
                    f"cannot listen on {self.host}:{self.port}: {error.strerror or error}",
                    hint="another program holds that port: choose one with --port",
                ) from None
            print(self.start_url, flush=True)
            print(
                f"WriteIt {__version__} in your browser: open the address above "
                "(it carries your server token once). Ctrl+C stops it and saves the streams.",
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()
        print("WriteIt web stopped.", flush=True)


class _RedactTokens(logging.Filter):
    """Masks ``token=`` query values in aiohttp's and textual-serve's log lines: the first
    request of a session carries the token in its URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_tokens(record.getMessage())
        record.args = None
        return True


def mask_tokens() -> None:
    for name in ("aiohttp.access", "aiohttp.server", "aiohttp.web", "textual-serve"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())


def app_command(
    workspace: str | None = None, models: Iterable[str] = (), style: str | None = None
) -> str:
    """The shell command textual-serve runs for each tab: this module, with this Python."""
    args = [sys.executable, "-m", "writeit.web"]
    if workspace:
        args += ["--workspace", workspace]
    for model in models:
        args += ["--model", model]
    if style:
        args += ["--style", style]
    return "exec " + shlex.join(args)  # exec: the app itself gets the signals, not a shell


def run_web(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    workspace: str | None = None,
    models: Iterable[str] = (),
    style: str | None = None,
) -> None:
    """`writeit web`: check the workspace, make the token if needed, serve."""
    from writeit.server.app import configured_hosts
    from writeit.workspaces import ensure_token, get_workspace

    get_workspace(workspace)  # an unknown workspace fails here, not in every tab
    allowed = configured_hosts()
    exposed(host, allowed)
    command = app_command(workspace, models, style)
    WebServer(command, token=ensure_token(), host=host, port=port, allowed_hosts=allowed).serve()


# --- the TUI process of one tab ---------------------------------------------------------------


def browser_app(**kwargs: Any) -> Any:
    """WriteItApp, quitting as Q does when textual-serve asks it to (a tab closed, the
    server stopping) or on SIGINT/SIGTERM, which the web driver turns into ExitApp; an
    export, once its dialog closes, is also handed to the browser as a download."""
    from textual import messages

    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.export import ExportDialog

    class BrowserApp(WriteItApp):
        async def _on_exit_app(self, message: messages.ExitApp) -> None:
            if not self._quitting:
                message.prevent_default()
                await self.action_quit()  # saves, then exits (another ExitApp)

        def push_screen(self, screen: Any, callback: Any = None, *args: Any, **kw: Any) -> Any:
            if isinstance(screen, ExportDialog) and callback is None:
                callback = self._download
            return super().push_screen(screen, callback, *args, **kw)

        def _download(self, saved: Path | None) -> None:
            """The file the writer exported, to the browser's downloads (the export
            dialog wrote it in the workspace, on the machine `writeit web` runs on)."""
            if saved is not None:
                self.deliver_binary(saved, mime_type=_MIME.get(saved.suffix))

    return BrowserApp(**kwargs)


_MIME = {".md": "text/markdown", ".yaml": "application/yaml", ".json": "application/json"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m writeit.web", description=__doc__)
    parser.add_argument("--workspace")
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--style")
    args = parser.parse_args(argv)
    os.umask(0o077)  # as `writeit` itself: what the app writes is the writer's alone
    browser_app(workspace=args.workspace, models=args.model, style=args.style).run()


# --- pages -----------------------------------------------------------------------------------

_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

_SIGN_IN = (
    "<p>This is WriteIt in your browser. It needs your server token, which "
    "<code>writeit web</code> puts in the address it prints when it starts: open that "
    "address.</p><p>Or print the token with <code>writeit serve --show-token</code> and "
    "open <code>/?token=</code> followed by it.</p>"
)
_WRONG_TOKEN = "<p>That token is not this WriteIt's.</p>"

_STYLE = (
    "body{background:#0c181f;color:#e8eef2;font-family:'Roboto Mono',monospace;margin:0}"
    "main{max-width:40em;margin:4em auto;padding:0 1em}code{color:#ffd479}"
)


def _page(status: int, title: str, body: str) -> web.Response:
    text = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title} · WriteIt</title>"
        f"<style>{_STYLE}</style></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    )
    return web.Response(status=status, text=text, content_type="text/html", headers=_NO_STORE)


def _int(value: str, default: int) -> int:
    return int(value) if value.isdigit() else default


_TERMINAL = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>WriteIt</title>
<link rel="stylesheet" href="{static}css/xterm.css">
<script src="{static}js/textual.js"></script>
<style>
@font-face {{font-family: 'Roboto Mono'; src: url('{static}fonts/RobotoMono-VariableFont_wght.ttf');}}
html, body {{height: 100%; margin: 0; background: #0c181f;}}
.textual-terminal {{width: 100vw; height: 100vh;}}
.ended {{display: none; position: absolute; inset: 0; z-index: 10; align-items: center;
  justify-content: center; background: rgba(12, 24, 31, 0.9); color: #e8eef2;
  font-family: 'Roboto Mono', monospace;}}
body.-closed .ended {{display: flex;}}
a {{color: #ffd479;}}
</style>
</head>
<body>
<div class="ended"><p>WriteIt closed (your work is saved). <a href="/">Open it again</a></p></div>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{socket}"
  data-font-size="{font_size}" data-writeit="{version}"></div>
<script>
// Keys go to WriteIt from the start, without a click first (xterm takes them in its textarea).
(function focusTerminal(tries) {{
  var area = document.querySelector(".xterm-helper-textarea");
  if (area) {{ area.focus(); }} else if (tries > 0) {{ setTimeout(function () {{ focusTerminal(tries - 1); }}, 50); }}
}})(200);
</script>
</body>
</html>
"""


if __name__ == "__main__":
    main()
