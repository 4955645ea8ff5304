"""The HTTP + WebSocket server: the same engine for other clients, safe on a laptop.

Importing this package has no side effects; `create_app()` builds an app and
`run_server()` is what `writeit serve` runs.

Modules: `app` (factory, lifespan, `writeit serve`), `security` (Host, token and body
guard), `routes` (REST under /api), `stream` (the WebSocket), `bodies` (request
models), `state` (the app's engine and run JSON), `errors` (the JSON error shape).
"""

from writeit.server.app import create_app, run_server

__all__ = ["create_app", "run_server"]
