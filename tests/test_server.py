"""The server against a real uvicorn on a free loopback port: REST, WebSocket, security.

Runs are driven only over HTTP (the engine lives on the server thread's loop); tests
read back what was stored through ``server.engine.store``. Waiting is done on the
WebSocket (read until ``step_done``), never with sleeps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from writeit import __version__

TWO = ["scripted-a", "scripted-b"]
STEPS = ["angles", "outline", "draft", "polish"]


# --- helpers -------------------------------------------------------------------------------


def start_run(client: httpx.Client, source: str, models: list[str] = TWO, **extra) -> str:
    response = client.post(
        "/api/runs",
        json={"pipeline": "tech-article", "inputs": {"source_material": source}, "models": models}
        | extra,
    )
    assert response.status_code == 201, response.text
    return response.json()["pipeline_run_id"]


def watch(server, run_id: str, **options) -> ClientConnection:
    options.setdefault("additional_headers", server.headers)
    return ws_connect(f"{server.ws_url}/api/runs/{run_id}/stream", open_timeout=10, **options)


def receive(ws: ClientConnection) -> dict:
    return json.loads(ws.recv(timeout=20))


def read_until(ws: ClientConnection, done: Callable[[dict], bool]) -> list[dict]:
    """Every message up to and including the first one `done` accepts."""
    messages = []
    while True:
        messages.append(receive(ws))
        if done(messages[-1]):
            return messages


def step_done(step: str) -> Callable[[dict], bool]:
    return lambda m: m["type"] == "step_done" and m["step"] == step


class Mirror:
    """What a client shows: each response's text, from `state` messages and deltas."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.states: list[dict] = []

    def apply(self, messages: list[dict]) -> Mirror:
        for message in messages:
            if message["type"] == "state":
                self.states.append(message)
                self.texts = {
                    response["response_id"]: response["raw_output"]
                    for step in message["run"]["steps"].values()
                    for response in step["ai_responses"]
                }
            elif message["type"] == "delta":
                self.texts[message["response_id"]] = (
                    self.texts.get(message["response_id"], "") + message["text"]
                )
        return self


def error_of(response: httpx.Response, status: int) -> dict:
    """The JSON error of a refused request, after checking its status and shape."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "hint"}
    assert isinstance(error["code"], str) and error["message"]
    return error


def execute_and_wait(client: httpx.Client, ws: ClientConnection, run_id: str, step: str) -> dict:
    response = client.post(f"/api/runs/{run_id}/steps/{step}/execute")
    assert response.status_code == 202, response.text
    read_until(ws, step_done(step))
    return response.json()


def drive_to_the_end(server, client: httpx.Client, run_id: str) -> None:
    with watch(server, run_id) as ws:
        receive(ws)
        for step in STEPS:
            execute_and_wait(client, ws, run_id, step)
            assert client.post(f"/api/runs/{run_id}/select", json={"index": 0}).status_code == 200
            assert client.post(f"/api/runs/{run_id}/accept").status_code == 200


# --- the journey ---------------------------------------------------------------------------


def test_the_whole_journey_over_rest_and_websocket(server, client, source, isolated_env):
    run_id = start_run(client, source)
    store = server.engine.store
    assert store.load(run_id).status.value == "initializing"

    with watch(server, run_id) as ws:
        first = receive(ws)
        mirror = Mirror().apply([first])
        assert first["type"] == "state" and first["reason"] == "initial"
        assert first["run"]["pipeline_run_id"] == run_id
        assert first["run"]["current_step"] == "angles"

        for number, step in enumerate(STEPS):
            started = client.post(f"/api/runs/{run_id}/steps/{step}/execute")
            assert started.status_code == 202, started.text
            body = started.json()
            assert body["current_step"] == step
            assert [c["model"] for c in body["candidates"]] == TWO
            assert {c["status"] for c in body["candidates"]} == {"streaming"}

            messages = read_until(ws, step_done(step))
            kinds = [m["type"] for m in messages]
            assert kinds.count("response_started") == 2 and kinds.count("response_done") == 2
            assert kinds.index("response_started") < kinds.index("delta")
            assert kinds.index("delta") < kinds.index("response_done")
            assert {m["step"] for m in messages if m["type"] == "delta"} == {step}
            shown = mirror.apply(messages).texts
            stored_step = store.load(run_id).steps[step]
            for done in (m for m in messages if m["type"] == "response_done"):
                stored = stored_step.response(done["response_id"])
                assert shown[done["response_id"]] == stored.raw_output
                assert done["text"] == stored.processed_content
                assert done["tokens"] == stored.tokens > 0
                assert done["model"] in TWO and done["error"] is None

            selected = client.post(
                f"/api/runs/{run_id}/select", json={"index": 1, "feedback": f"notes on {step}"}
            )
            assert selected.status_code == 200, selected.text
            chosen = selected.json()["steps"][step]
            assert chosen["status"] == "completed" and chosen["user_selection"] == 1
            assert chosen["user_feedback"] == f"notes on {step}"

            accepted = client.post(f"/api/runs/{run_id}/accept")
            assert accepted.status_code == 200, accepted.text
            if number + 1 < len(STEPS):
                assert accepted.json()["current_step"] == STEPS[number + 1]
            else:
                assert accepted.json()["status"] == "completed"
        read_until(ws, lambda m: m["type"] == "run_status" and m["status"] == "completed")

    run = store.load(run_id)
    assert run.status.value == "completed"
    for previous, step in zip(STEPS, STEPS[1:], strict=False):
        assert f"notes on {previous}" in run.steps[step].prompt  # feedback steers the next step
        assert run.steps[previous].output in run.steps[step].prompt
        assert run.steps[step].output.startswith("[scripted] scripted-b answered:")
    assert run.final_text == run.steps["polish"].output

    shown = client.get(f"/api/runs/{run_id}").json()
    assert shown["status"] == "completed" and shown["streaming"] == []
    assert client.get(f"/api/runs/{run_id}", params={"at": 1}).json()["status"] == "initializing"
    listed = client.get("/api/runs", params={"status": "completed"}).json()["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    artifacts = client.get(f"/api/runs/{run_id}/artifacts", params={"include_text": False}).json()
    assert [s["step"] for s in artifacts["steps"]] == STEPS
    assert all("text" not in r for s in artifacts["steps"] for r in s["responses"])
    polish = client.get(f"/api/runs/{run_id}/artifacts", params={"step": "polish"}).json()
    assert polish["steps"][0]["output"] == run.final_text

    document = client.post(f"/api/runs/{run_id}/export", json={"format": "md"}).json()
    assert document["format"] == "md"
    assert document["content"].startswith(f"---\nrun_id: {run_id}")
    assert run.final_text.strip() in document["content"]
    saved = client.post(
        f"/api/runs/{run_id}/export",
        json={"format": "md", "save": True, "path": "journey/article.md"},
    ).json()
    exports = server.app.state.writeit.workspace.exports
    path = Path(saved["path"])
    assert path == (exports / "journey" / "article.md").resolve()
    assert path.read_text() == document["content"] and saved["bytes"] == path.stat().st_size
    default = client.post(f"/api/runs/{run_id}/export", json={"format": "json", "save": True})
    data = json.loads(Path(default.json()["path"]).read_text())
    assert Path(default.json()["path"]).parent == exports.resolve()
    assert data["article"] == run.final_text and data["metadata"]["run_id"] == run_id

    from typer.testing import CliRunner

    from writeit.cli import app as cli

    listed = CliRunner().invoke(cli, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.output)] == [
        (run_id, "completed")
    ]


def test_catalogue_of_pipelines_styles_and_models(client):
    pipelines = {p["name"]: p for p in client.get("/api/pipelines").json()["pipelines"]}
    assert pipelines["tech-article"]["steps"] == STEPS and pipelines["tech-article"]["valid"]
    one = client.get("/api/pipelines/tech-article").json()
    assert one["name"] == "tech-article" and [s["name"] for s in one["steps"]] == STEPS
    styles = {s["name"] for s in client.get("/api/styles").json()["styles"]}
    assert {"tech-journalist", "executive-brief", "conversational-blog"} <= styles
    models = {m["model_id"]: m for m in client.get("/api/models").json()["models"]}
    assert models["scripted-a"]["usable"] and models["markov"]["usable"]
    assert not models["gpt-4o-mini"]["usable"]
    assert "llm keys set openai" in models["gpt-4o-mini"]["hint"]


def test_branching_merging_and_feedback_through_the_api(server, client, source, scripted):
    run_id = start_run(client, source)
    with watch(server, run_id) as ws:
        receive(ws)
        execute_and_wait(client, ws, run_id, "angles")
        merged = client.post(
            f"/api/runs/{run_id}/merge", json={"response_ids": [0, 1], "text": "My own angles"}
        )
        assert merged.status_code == 200 and merged.json()["steps"]["angles"]["merged_content"]
        client.post(f"/api/runs/{run_id}/accept")

        started = client.post(
            f"/api/runs/{run_id}/steps/outline/execute",
            json={"feedback": "Take angle 2", "guide": "Short sections"},
        )
        assert started.status_code == 202, started.text
        read_until(ws, step_done("outline"))
        run = server.engine.store.load(run_id)
        assert run.steps["angles"].user_feedback == "Take angle 2"
        assert "Take angle 2" in run.steps["outline"].prompt
        assert "Short sections" in run.steps["outline"].prompt
        again = client.post(f"/api/runs/{run_id}/steps/outline/execute")
        assert error_of(again, 409)["code"] == "already_executed"

        scripted.script("scripted-a", replies=["The merged outline"])
        ai = client.post(
            f"/api/runs/{run_id}/merge",
            json={"response_ids": [0, 1], "instruction": "keep the best of both"},
        )
        assert ai.status_code in (200, 202), ai.text
        read_until(ws, lambda m: m["type"] == "responses_merged")
        assert server.engine.store.load(run_id).steps["outline"].output == "The merged outline"

    rewound = client.post(f"/api/runs/{run_id}/rewind", json={"step": "angles"})
    assert rewound.status_code == 200 and rewound.json()["current_step"] == "angles"
    branched = client.post(f"/api/runs/{run_id}/select", json={"index": 1})
    child = branched.json()
    assert branched.status_code == 200 and child["branched_from"] == run_id
    assert child["pipeline_run_id"] != run_id and child["parent_pipeline_run_id"] == run_id
    assert server.engine.store.load(run_id).steps["outline"].output == "The merged outline"
    forked = client.post(f"/api/runs/{run_id}/fork", json={"step": "angles"})
    assert forked.status_code == 201 and forked.json()["current_step"] == "angles"
    assert set(server.engine.store.children(run_id)) == {
        child["pipeline_run_id"],
        forked.json()["pipeline_run_id"],
    }


# --- security ------------------------------------------------------------------------------


def test_the_api_needs_the_token(server):
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        health = anonymous.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "version": __version__}
        for path in ("/api/pipelines", "/api/runs", "/api/no-such-route"):
            refused = anonymous.get(path)
            assert error_of(refused, 401)["code"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"
        wrong = anonymous.get("/api/runs", headers={"Authorization": "Bearer not-the-token"})
        assert "wrong" in error_of(wrong, 401)["message"]
        basic = anonymous.get("/api/runs", headers={"Authorization": f"Basic {server.token}"})
        error_of(basic, 401)
        posted = anonymous.post("/api/runs", json={"pipeline": "tech-article"})
        error_of(posted, 401)
        assert anonymous.get("/api/runs", headers=server.headers).status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
    assert server.engine.store.recent() == []


def test_the_websocket_needs_the_token(server, client, source):
    run_id = start_run(client, source)
    url = f"{server.ws_url}/api/runs/{run_id}/stream"
    for options in ({}, {"additional_headers": {"Authorization": "Bearer nope"}}):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, open_timeout=10, **options)
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["error"]["code"] == "unauthorized"
    with pytest.raises(InvalidStatus) as wrong:
        ws_connect(f"{url}?token=nope", open_timeout=10)
    assert wrong.value.response.status_code == 401
    with ws_connect(f"{url}?token={server.token}", open_timeout=10) as ws:
        assert receive(ws)["run"]["pipeline_run_id"] == run_id


def test_a_foreign_host_header_is_refused(server, source):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as http:
        for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example"):
            refused = http.get("/api/runs", headers={"Host": host})
            assert error_of(refused, 400)["code"] == "host_not_allowed"
        error_of(http.get("/health", headers={"Host": "evil.example"}), 400)
        posted = http.post(
            "/api/runs",
            headers={"Host": "evil.example"},
            json={"pipeline": "tech-article", "inputs": {"source_material": source}},
        )
        error_of(posted, 400)
        for host in (f"localhost:{server.port}", f"[::1]:{server.port}", "127.0.0.1"):
            assert http.get("/api/runs", headers={"Host": host}).status_code == 200
    assert server.engine.store.recent() == []

    sock = socket.create_connection(("127.0.0.1", server.port))
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(
            f"ws://evil.example:{server.port}/api/runs/abcd/stream",
            sock=sock,
            additional_headers=server.headers,
            open_timeout=10,
        )
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["error"]["code"] == "host_not_allowed"


def test_configured_hosts_are_allowed(live_server):
    server = live_server(allowed_hosts=["writeit.lan", "::2"])
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as http:
        assert http.get("/api/runs", headers={"Host": "writeit.lan:8000"}).status_code == 200
        assert http.get("/api/runs", headers={"Host": "[::2]:8000"}).status_code == 200
        error_of(http.get("/api/runs", headers={"Host": "other.lan"}), 400)
        page = {"Origin": "https://writeit.lan:8443"}
        assert http.get("/api/runs", headers=page).status_code == 200
        refused = http.get("/api/runs", headers={"Origin": "https://other.lan"})
        assert error_of(refused, 403)["code"] == "origin_not_allowed"


@pytest.fixture
def uvicorn_log(server) -> Iterator[list[str]]:
    """Every line uvicorn logs at INFO and above while the test runs (after the server
    started: its logging set-up replaces handlers and levels)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep()
    loggers = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield lines
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_token_never_reaches_the_server_log(server, client, source, uvicorn_log):
    run_id = start_run(client, source)
    path = f"/api/runs/{run_id}/stream"
    with ws_connect(f"{server.ws_url}{path}?token={server.token}&x=1", open_timeout=10) as ws:
        assert receive(ws)["run"]["pipeline_run_id"] == run_id
    sock = socket.create_connection(("127.0.0.1", server.port))
    with pytest.raises(InvalidStatus) as refused:  # refused for its Host, before the token
        ws_connect(f"ws://evil.example:{server.port}{path}?token={server.token}", sock=sock)
    assert refused.value.response.status_code == 400
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        in_url = anonymous.get("/api/runs", params={"token": server.token})
    assert "must not be sent in the URL" in error_of(in_url, 401)["message"]

    assert f'"WebSocket {path}?x=1" [accepted]' in "\n".join(uvicorn_log)
    assert f'"WebSocket {path}" 400' in "\n".join(uvicorn_log)
    assert any('"GET /api/runs HTTP/1.1" 401' in line for line in uvicorn_log)
    assert not [line for line in uvicorn_log if server.token in line]


def test_the_log_filter_masks_tokens_in_any_uvicorn_line():
    from writeit.server.app import _RedactTokens

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s" %d',
        ("127.0.0.1:5", "GET", "/api/x?a=1&token=s3cret&b=2", 200), None,
    )  # fmt: skip
    assert _RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /api/x?a=1&token=***&b=2" 200'


def test_a_websocket_from_a_foreign_page_is_refused(server, client, source):
    run_id = start_run(client, source)
    url = f"{server.ws_url}/api/runs/{run_id}/stream"
    for origin in ("http://evil.example", "https://127.0.0.1.evil.example", "null", "file://"):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, additional_headers={**server.headers, "Origin": origin})
        assert refused.value.response.status_code == 403, origin
        assert json.loads(refused.value.response.body)["error"]["code"] == "origin_not_allowed"
    with pytest.raises(InvalidStatus):  # the token in the URL does not make it acceptable
        ws_connect(f"{url}?token={server.token}", origin="http://evil.example")
    foreign = client.get("/api/runs", headers={"Origin": "https://evil.example"})
    assert error_of(foreign, 403)["code"] == "origin_not_allowed"

    own = ("http://localhost:5173", f"http://127.0.0.1:{server.port}", "https://[::1]", None)
    for origin in own:  # pages served from this machine, and clients that are not browsers
        extra = {"Origin": origin} if origin else {}
        with ws_connect(url, additional_headers={**server.headers, **extra}) as ws:
            assert receive(ws)["run"]["pipeline_run_id"] == run_id, origin


def test_export_paths_cannot_leave_the_exports_folder(server, client, source, tmp_path):
    run_id = start_run(client, source)
    exports = server.app.state.writeit.workspace.exports
    exports.mkdir(parents=True, exist_ok=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (exports / "link").symlink_to(elsewhere)
    before = sorted(p for p in tmp_path.rglob("*"))
    for path in (
        "../outside.md",
        "sub/../../outside.md",
        "../../../../../../tmp/writeit-evil.md",
        str(tmp_path / "absolute.md"),
        "link/through-a-symlink.md",
    ):
        refused = client.post(
            f"/api/runs/{run_id}/export", json={"format": "md", "save": True, "path": path}
        )
        assert error_of(refused, 400)["code"] == "path_outside_exports", path
    assert (
        error_of(
            client.post(f"/api/runs/{run_id}/export", json={"format": "md", "path": "."}), 400
        )["code"]
        == "bad_path"
    )
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    assert not Path("/tmp/writeit-evil.md").exists()

    inside = client.post(f"/api/runs/{run_id}/export", json={"format": "yaml", "path": "a/b.yaml"})
    assert inside.status_code == 200 and (exports / "a" / "b.yaml").is_file()


def export_to(client: httpx.Client, run_id: str, path: str | None, **body) -> httpx.Response:
    return client.post(
        f"/api/runs/{run_id}/export", json={"format": "md", "save": True, "path": path} | body
    )


def test_an_export_never_follows_a_symlink_planted_at_its_temporary_name(
    server, client, source, tmp_path
):
    run_id = start_run(client, source)
    exports = server.app.state.writeit.workspace.exports
    exports.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (exports / "note.md.tmp").symlink_to(victim)  # the name the old code wrote through
    saved = export_to(client, run_id, "note.md")
    assert saved.status_code == 200, saved.text
    note = exports / "note.md"
    assert victim.read_text() == "precious"
    assert not note.is_symlink() and note.read_text().startswith(f"---\nrun_id: {run_id}")
    assert (exports / "note.md.tmp").readlink() == victim  # left as it was
    assert sorted(p.name for p in exports.iterdir()) == ["note.md", "note.md.tmp"]


def test_names_the_file_system_refuses_are_400_with_the_reason(server, client, source):
    run_id = start_run(client, source)
    exports = server.app.state.writeit.workspace.exports
    assert export_to(client, run_id, "ok.md").status_code == 200
    for path, reason in (
        ("x" * 256 + ".md", "longer than 255 bytes (ENAMETOOLONG)"),
        ("é" * 128, "longer than 255 bytes (ENAMETOOLONG)"),
        ("ok.md/child.md", "should be a folder is a file (ENOTDIR)"),
    ):
        refused = export_to(client, run_id, path)
        error = error_of(refused, 400)
        assert error["code"] == "bad_path" and reason in error["message"], error
        assert path in error["message"] and error["hint"]
    assert sorted(p.name for p in exports.iterdir()) == ["ok.md"]
    assert client.get(f"/api/runs/{run_id}").status_code == 200  # the connection lives on


def test_an_existing_export_is_409_unless_overwrite_and_default_names_stay_unique(
    server, client, source
):
    run_id = start_run(client, source)
    exports = server.app.state.writeit.workspace.exports
    first = export_to(client, run_id, "twice.md")
    assert first.status_code == 200
    edited = exports / "twice.md"
    edited.write_text("the writer's edits")
    again = export_to(client, run_id, "twice.md")
    error = error_of(again, 409)
    assert error["code"] == "export_exists" and "twice.md" in error["message"]
    assert "overwrite" in error["hint"]
    assert edited.read_text() == "the writer's edits"
    replaced = export_to(client, run_id, "twice.md", overwrite=True)
    assert replaced.status_code == 200 and edited.read_text().startswith("---\nrun_id:")

    paths = [Path(export_to(client, run_id, None, format="json").json()["path"]) for _ in "ab"]
    assert paths[1] == paths[0].with_name(paths[0].stem + "-2.json")
    assert all(json.loads(p.read_text())["metadata"]["run_id"] == run_id for p in paths)


# --- refusals ------------------------------------------------------------------------------


def test_while_a_step_streams_only_a_finished_candidate_can_be_chosen(
    server, client, source, scripted
):
    gate = scripted.Gate(after_chunks=1)
    scripted.script("scripted-a", gate=gate)
    run_id = start_run(client, source)
    with watch(server, run_id) as ws:
        receive(ws)
        assert client.post(f"/api/runs/{run_id}/steps/angles/execute").status_code == 202
        read_until(ws, lambda m: m["type"] == "response_done" and m["model"] == "scripted-b")
        gate.wait_reached_sync()
        streaming = client.post(f"/api/runs/{run_id}/select", json={"index": 0})
        assert "streaming" in error_of(streaming, 422)["message"]
        again = client.post(f"/api/runs/{run_id}/steps/angles/execute", json={"regenerate": True})
        assert error_of(again, 409)["code"] == "step_running"
        assert "still generating" in again.json()["error"]["message"]
        step = server.engine.store.load(run_id).steps["angles"]
        assert step.status.value == "running" and step.user_selection is None
        chosen = client.post(f"/api/runs/{run_id}/select", json={"index": 1})
        assert chosen.status_code == 200, chosen.text
        read_until(ws, step_done("angles"))
    gate.release()
    step = server.engine.store.load(run_id).steps["angles"]
    assert step.user_selection == 1
    assert step.candidates[0].status.value == "interrupted" and step.candidates[0].raw_output


def test_transitions_the_state_machines_forbid_are_409(server, client, source):
    run_id = start_run(client, source, models=["scripted-a"])
    store = server.engine.store
    early = client.post(f"/api/runs/{run_id}/accept")
    assert error_of(early, 409)["code"] == "invalid_state"
    assert "no choice yet" in early.json()["error"]["message"]
    wrong_step = client.post(f"/api/runs/{run_id}/steps/outline/execute")
    assert error_of(wrong_step, 409)["code"] == "not_current_step"
    paused = client.post(f"/api/runs/{run_id}/pause")
    assert error_of(paused, 409)["code"] == "invalid_transition"
    skip = client.post(f"/api/runs/{run_id}/skip")
    assert "cannot be skipped" in error_of(skip, 409)["message"]
    assert error_of(client.post(f"/api/runs/{run_id}/rewind"), 409)["code"] == "invalid_state"
    assert [e.type.value for e in store.events(run_id)] == ["run_created"]  # nothing written

    drive_to_the_end(server, client, run_id)
    assert store.load(run_id).status.value == "completed"
    last_seq = store.summary(run_id).last_seq
    done = client.post(f"/api/runs/{run_id}/steps/polish/execute", json={"regenerate": True})
    assert error_of(done, 409)["code"] == "run_completed"
    assert "fork" in done.json()["error"]["hint"]
    assert error_of(client.post(f"/api/runs/{run_id}/pause"), 409)["code"] == "invalid_transition"
    assert store.summary(run_id).last_seq == last_seq and store.children(run_id) == []


def test_unknown_runs_steps_and_pipelines_are_404(server, client, source):
    error = error_of(client.get("/api/runs/00000000-0000-0000-0000-000000000000"), 404)
    assert error["code"] == "unknown_run"
    error_of(client.post("/api/runs/abcdef12/select", json={"index": 0}), 404)
    error_of(client.post("/api/runs/abcdef12/export", json={"format": "md"}), 404)
    assert error_of(client.get("/api/pipelines/nope"), 404)["code"] == "unknown_pipeline"
    assert error_of(client.get("/api/nothing-here"), 404)["code"] == "not_found"
    with pytest.raises(InvalidStatus) as refused:
        watch(server, "abcdef12")
    assert refused.value.response.status_code == 404

    run_id = start_run(client, source)
    unknown_step = client.post(f"/api/runs/{run_id}/steps/conclusion/execute")
    assert error_of(unknown_step, 404)["code"] == "unknown_step"
    assert client.get(f"/api/runs/{run_id[:8]}").json()["pipeline_run_id"] == run_id
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert error_of(client.get(f"/api/runs/{run_id}"), 404)["code"] == "unknown_run"
    assert server.engine.store.summary(run_id).deleted
    assert client.get("/api/runs").json()["runs"] == []


def test_run_id_prefixes_need_four_characters_over_rest_and_websocket(server, client, source):
    run_id = start_run(client, source)
    for short in (run_id[:1], run_id[:3]):
        assert error_of(client.get(f"/api/runs/{short}"), 422)["code"] == "invalid_request"
        with pytest.raises(InvalidStatus) as refused:
            watch(server, short)
        assert refused.value.response.status_code == 422
        error = json.loads(refused.value.response.body)["error"]
        assert error["code"] == "invalid_request" and "at least 4 characters" in error["message"]
    assert client.get(f"/api/runs/{run_id[:4]}").json()["pipeline_run_id"] == run_id
    with watch(server, run_id[:4]) as ws:
        assert receive(ws)["run"]["pipeline_run_id"] == run_id


def test_oversize_bodies_are_413(client, server):
    big = {"pipeline": "tech-article", "inputs": {"source_material": "x" * (2 << 20)}}
    assert error_of(client.post("/api/runs", json=big), 413)["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"pipeline": "tech-article", "inputs": {"source_material": "'
        for _ in range(3):
            yield b"x" * (1 << 19)
        yield b'"}}'

    assert error_of(client.post("/api/runs", content=chunks()), 413)["code"] == "body_too_large"
    assert server.engine.store.recent() == []


def read_http_answer(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of one HTTP/1.1 answer read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"EOF"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(fields["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), json.loads(body)


def test_a_declared_oversize_body_is_refused_before_it_is_sent(server):
    request = (
        "POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request.encode())  # ...and not one byte of the body
        status, body = read_http_answer(sock)  # a server waiting for the body times out
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert server.engine.store.recent() == []


def test_bad_bodies_are_422_and_bad_json_400(server, client, source):
    cases = [
        ("/api/runs", {"pipeline": 5}, "invalid_request"),
        ("/api/runs", {"pipeline": "tech-article", "inputz": {}}, "invalid_request"),
        ("/api/runs", {"pipeline": "../../etc/passwd"}, "invalid_request"),
        ("/api/runs", {"pipeline": "elsewhere.yaml"}, "unknown_pipeline"),
        ("/api/runs", {"pipeline": "tech-article", "models": ["scripted-a"]}, "invalid_request"),
        (
            "/api/runs",
            {"pipeline": "tech-article", "inputs": {"source_material": "x"}, "models": ["nope"]},
            "unknown_model",
        ),
        (
            "/api/runs",
            {"pipeline": "tech-article", "inputs": {"source_material": "x"}, "style": "nope"},
            "unknown_style",
        ),
        (
            "/api/runs",
            {"pipeline": "tech-article", "inputs": {"source_material": "x"}, "models": []},
            "invalid_request",
        ),
    ]
    for path, body, code in cases:
        assert error_of(client.post(path, json=body), 422)["code"] == code, body
    required = client.post("/api/runs", json={"pipeline": "tech-article", "models": ["scripted-a"]})
    assert "source_material is required" in required.json()["error"]["message"]
    details = client.post("/api/runs", json={"pipeline": 5}).json()["error"]["details"]
    assert details[0]["loc"] == ["body", "pipeline"]
    keyless = client.post(
        "/api/runs",
        json={"pipeline": "tech-article", "inputs": {"source_material": "x"}, "models": ["gpt-4o"]},
    )
    assert "needs an API key" in error_of(keyless, 422)["message"]

    run_id = start_run(client, source)
    both = client.post(f"/api/runs/{run_id}/select", json={"index": 0, "response_id": "abcd"})
    assert error_of(both, 422)["code"] == "invalid_request"
    none_yet = client.post(f"/api/runs/{run_id}/select", json={"index": 0})
    assert error_of(none_yet, 422)["code"] == "unknown_response"
    error_of(client.post(f"/api/runs/{run_id}/merge", json={"response_ids": [0]}), 422)
    error_of(client.post(f"/api/runs/{run_id}/fork", json={"step": "nope"}), 422)
    error_of(client.post(f"/api/runs/{run_id}/export", json={"format": "pdf"}), 422)
    error_of(client.get(f"/api/runs/{run_id}", params={"at": 0}), 422)
    assert "no event 99" in error_of(client.get(f"/api/runs/{run_id}?at=99"), 422)["message"]
    error_of(client.get("/api/runs", params={"status": "sleeping"}), 422)
    export_path = f"/api/runs/{run_id}/export"
    for path, body in (  # booleans and numbers are strict: no 0 for false, no "1" for 1
        (export_path, {"format": "md", "save": 0}),
        (export_path, {"format": "md", "include_history": "yes"}),
        (export_path, {"format": "md", "path": "strict.md", "overwrite": 1}),
        (f"/api/runs/{run_id}/steps/angles/execute", {"regenerate": 1}),
        (f"/api/runs/{run_id}/select", {"index": "0"}),
        (f"/api/runs/{run_id}/select", {"index": True}),
        (f"/api/runs/{run_id}/merge", {"response_ids": [0, 1.0], "text": "x"}),
    ):
        assert error_of(client.post(path, json=body), 422)["code"] == "invalid_request", body
    assert list(server.app.state.writeit.workspace.exports.iterdir()) == []
    malformed = client.post(
        "/api/runs", content=b'{"pipeline": ', headers={"Content-Type": "application/json"}
    )
    assert error_of(malformed, 400)["code"] == "invalid_json"
    assert [r.run_id for r in server.engine.store.recent()] == [run_id]
    assert [e.type.value for e in server.engine.store.events(run_id)] == ["run_created"]


# --- load ----------------------------------------------------------------------------------


def test_concurrent_runs_up_to_the_limit_and_409_beyond(live_server, scripted, source):
    from writeit.engine import Engine
    from writeit.models import UserPreferences
    from writeit.workspaces import get_workspace

    engine = Engine(
        get_workspace(),
        preferences=UserPreferences(max_concurrent_pipelines=2, request_timeout=5),
        retry_backoff=0.01,
    )
    server = live_server(engine=engine)
    gate = scripted.Gate(after_chunks=1)
    scripted.script("scripted-a", gate=gate)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=15) as client:
        runs = [start_run(client, source, models=["scripted-a"]) for _ in range(3)]
        with contextlib.ExitStack() as stack:
            watchers = [stack.enter_context(watch(server, run_id)) for run_id in runs]
            for ws in watchers:
                receive(ws)
            for run_id in runs[:2]:
                started = client.post(f"/api/runs/{run_id}/steps/angles/execute")
                assert started.status_code == 202
            refused = client.post(f"/api/runs/{runs[2]}/steps/angles/execute")
            error = error_of(refused, 409)
            assert error["code"] == "too_many_runs"
            assert "max_concurrent_pipelines = 2" in error["message"]
            assert [e.type.value for e in engine.store.events(runs[2])] == ["run_created"]
            gate.wait_reached_sync()
            gate.release()
            for ws in watchers[:2]:
                read_until(ws, step_done("angles"))
            started = client.post(f"/api/runs/{runs[2]}/steps/angles/execute")
            assert started.status_code == 202
            read_until(watchers[2], step_done("angles"))
    for run_id in runs:
        candidates = engine.store.load(run_id).steps["angles"].candidates
        assert [c.status.value for c in candidates] == ["completed"]


def test_a_slow_websocket_client_gets_a_resync_and_never_slows_the_run(
    live_server, scripted, source
):
    # Small socket buffers and a small per-client queue make the backlog overflow early.
    server = live_server(stream_queue=16, sndbuf=4096)
    reply = "".join(f"word{i} " for i in range(8000))
    scripted.script("scripted-a", replies=[reply], chunk_size=4)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=15) as client:
        run_id = start_run(client, source, models=["scripted-a"])
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", server.port))
        with (
            watch(server, run_id, sock=raw, max_queue=1, compression=None) as slow,
            watch(server, run_id) as fast,
        ):
            assert receive(slow)["type"] == "state"  # then it stops reading for a while
            assert receive(fast)["type"] == "state"
            assert client.post(f"/api/runs/{run_id}/steps/angles/execute").status_code == 202

            # The fast one is not held back: it sees the step end while the slow one
            # has not read a thing (it may itself resync on a loaded machine).
            seen = Mirror().apply(read_until(fast, step_done("angles")))
            stored = server.engine.store.load(run_id).steps["angles"].candidates[0]
            assert stored.status.value == "completed" and stored.raw_output == reply
            assert seen.texts[stored.response_id] == reply

            def caught_up(message: dict) -> bool:  # a resync may stand in for step_done
                if message["type"] == "state":
                    response = message["run"]["steps"]["angles"]["ai_responses"][0]
                    return response["status"] == "completed"
                return message["type"] == "step_done"

            backlog = read_until(slow, caught_up)
            states = [m for m in backlog if m["type"] == "state"]
            assert states and states[0]["reason"] == "resync" and states[0]["dropped"] > 0
            before = backlog[: backlog.index(states[0])]
            streamed = "".join(m["text"] for m in before if m["type"] == "delta")
            assert reply.startswith(streamed) and len(streamed) < len(reply)
            assert Mirror().apply(backlog).texts[stored.response_id] == reply

            selected = client.post(f"/api/runs/{run_id}/select", json={"index": 0})
            assert selected.status_code == 200  # the run goes on, and both still watch it
            for ws in (slow, fast):
                read_until(ws, lambda m: m["type"] == "response_selected")
    assert server.engine.store.load(run_id).steps["angles"].status.value == "completed"


def test_a_client_joining_mid_stream_sees_every_character_once(server, client, source, scripted):
    gate = scripted.Gate(after_chunks=3)
    scripted.script("scripted-a", gate=gate, chunk_size=10)
    run_id = start_run(client, source, models=["scripted-a"])
    assert client.post(f"/api/runs/{run_id}/steps/angles/execute").status_code == 202
    gate.wait_reached_sync()
    with watch(server, run_id) as late, watch(server, run_id) as other:
        first = receive(late)
        response = first["run"]["steps"]["angles"]["ai_responses"][0]
        assert response["status"] == "streaming"
        assert len(response["raw_output"]) == 30  # streamed so far, saved or not yet
        assert first["run"]["streaming"] == [response["response_id"]]
        receive(other)
        other.send(json.dumps({"type": "state"}))
        requested = read_until(other, lambda m: m["type"] == "state")[-1]
        assert requested["reason"] == "requested"
        gate.release()
        mirrors = [
            Mirror().apply([first, *read_until(late, step_done("angles"))]),
            Mirror().apply([requested, *read_until(other, step_done("angles"))]),
        ]
    stored = server.engine.store.load(run_id).steps["angles"].candidates[0]
    assert stored.status.value == "completed"
    for mirror in mirrors:
        assert mirror.texts[stored.response_id] == stored.raw_output


def test_clients_see_changes_another_process_makes_to_the_run(server, client, source):
    import asyncio

    from writeit.engine import Engine

    run_id = start_run(client, source)
    with watch(server, run_id) as ws, watch(server, run_id) as other:
        receive(ws), receive(other)
        assert client.post(f"/api/runs/{run_id}/steps/angles/execute").status_code == 202
        read_until(ws, step_done("angles")), read_until(other, step_done("angles"))
        # Another writer on the same store, as the TUI or a CLI run would be.
        elsewhere = Engine(server.engine.workspace)
        asyncio.run(elsewhere.select(run_id, 1, feedback="Lead with the outage"))
        # A plain read that folds the change first must not hide it from the watchers.
        assert client.get(f"/api/runs/{run_id}").json()["steps"]["angles"]["user_selection"] == 1
        states = [read_until(sock, lambda m: m["type"] == "state")[-1] for sock in (ws, other)]
    for state in states:
        assert state["reason"] == "external"
        angles = state["run"]["steps"]["angles"]
        assert angles["user_selection"] == 1 and angles["user_feedback"] == "Lead with the outage"


# --- fuzzing -------------------------------------------------------------------------------


def test_schema_driven_fuzzing_finds_no_server_errors(server, client, source, isolated_env):
    """Schemathesis generates valid and invalid requests for every operation of our own
    OpenAPI schema; none may get a 5xx, and every 4xx carries the JSON error shape."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase, settings
    from schemathesis import GenerationMode

    run_id = start_run(client, source, models=TWO)  # a real run, so actions reach the engine
    with watch(server, run_id) as ws:
        receive(ws)
        execute_and_wait(client, ws, run_id, "angles")
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: list[str] = []
    calls = 0

    def check(case) -> None:
        nonlocal calls
        calls += 1
        response = case.call(base_url=server.url, headers=server.headers, timeout=15)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
        elif response.status_code >= 400:
            body = response.json()
            if not {"code", "message"} <= set(body.get("error", {})):
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in sorted(operations, key=lambda op: op.method == "delete"):
        real = "{run_id}" in operation.path and operation.method != "delete"
        fixed = {"run_id": run_id} if real else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in ({}, fixed) if fixed else ({},):
                strategy = operation.as_strategy(mode, path_parameters=path_parameters or None)

                @settings(
                    max_examples=25,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @hypothesis.given(case=strategy)
                def fuzz(case) -> None:
                    check(case)

                try:
                    fuzz()
                except hypothesis.errors.Unsatisfiable:
                    # Nothing of this operation can be made invalid (it takes no input).
                    assert mode == GenerationMode.NEGATIVE, operation.label
    assert not failures, failures
    assert calls > 200
    store = server.engine.store
    stored = store.load(run_id)  # whatever the fuzzer did, the history still folds
    assert stored.last_seq == store.summary(run_id).last_seq
    exports = server.app.state.writeit.workspace.exports.resolve()
    home = isolated_env.writeit_home.resolve()
    for root, _, files in os.walk(home):
        for name in files:  # the only files the API may write: the store and exports
            path = Path(root, name).resolve()
            assert (
                path.is_relative_to(exports)
                or path.is_relative_to(home / "workspaces" / "default" / "store")
                or path.name in ("server-token", "config.yaml")
            ), path


def test_actions_answer_the_run_without_the_earlier_attempts(server, client, source):
    run_id = start_run(client, source)
    with watch(server, run_id) as ws:
        receive(ws)
        execute_and_wait(client, ws, run_id, "angles")
        again = client.post(f"/api/runs/{run_id}/steps/angles/execute", json={"regenerate": True})
        assert again.status_code == 202
        read_until(ws, step_done("angles"))
    full = client.get(f"/api/runs/{run_id}").json()
    assert "texts" not in full and "responses_from" not in full
    everything = full["steps"]["angles"]["ai_responses"]
    assert [r["attempt"] for r in everything] == [1, 1, 2, 2]
    assert all(r["raw_output"] for r in everything)
    answer = client.post(f"/api/runs/{run_id}/select", json={"index": 1}).json()
    assert answer["texts"] == "latest"
    assert answer["responses_from"] == {"angles": 2}  # the first two: GET has them
    angles = answer["steps"]["angles"]
    ids = [r["response_id"] for r in angles["ai_responses"]]
    assert ids == [r["response_id"] for r in everything[2:]]
    assert all(r["raw_output"] and "prompt_used" not in r for r in angles["ai_responses"])
    assert angles["user_selection"] == 3  # the run's own index...
    assert angles["ai_responses"][3 - 2]["response_id"] == everything[3]["response_id"]
    polled = client.get(f"/api/runs/{run_id}", params={"texts": "latest"}).json()
    assert polled["steps"]["angles"]["ai_responses"] == angles["ai_responses"]
    assert polled["responses_from"] == {"angles": 2}
