"""The `writeit` command as a user runs it: real processes, real store, real files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from writeit.events import EventType
from writeit.models import PipelineStatus, ResponseStatus
from writeit.store import Store

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def writeit(
    *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(TESTS / "writeit_cli.py"), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def store_of(home: Path) -> Store:
    return Store(home / "workspaces" / "default" / "store")


def test_help_imports_no_heavy_module():
    code = (
        "import sys; sys.argv=['writeit','--help'];\n"
        "from writeit.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('llm','textual','fastapi','uvicorn','lmdb','writeit.engine') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout
    assert "run" in out.stdout and "pipelines" in out.stdout


def test_version():
    from writeit import __version__

    assert writeit("--version").stdout.strip() == f"writeit {__version__}"


def test_pipelines_lists_the_three_builtins_as_json():
    names = {p["name"] for p in json.loads(writeit("pipelines", "--json").stdout)}
    assert {"tech-article", "blog-post", "research-summary"} <= names
    table = writeit("pipelines").stdout
    assert "angles → outline → draft → polish" in table


def test_styles_lists_the_three_builtins():
    names = {s["name"] for s in json.loads(writeit("styles", "--json").stdout)}
    assert names == {"tech-journalist", "conversational-blog", "executive-brief"}


@pytest.mark.parametrize(
    "name,expected",
    [
        ("syntax-error.yaml", "YAML syntax error"),
        ("undefined-variable.yaml", "undefined variable 'audience'"),
        ("one-step.yaml", "only one step"),
        ("no-inputs.yaml", "no inputs"),
    ],
)
def test_validate_names_the_problem_and_line_and_exits_2(name, expected):
    result = writeit("validate", str(ROOT / "examples" / "broken" / name), check=False)
    assert result.returncode == 2
    assert expected in result.stderr
    assert f"{name}:" in result.stderr  # file:line
    assert "Traceback" not in result.stderr


def test_validate_accepts_every_builtin():
    for kind in ("pipelines", "styles"):
        for path in (ROOT / "src" / "writeit" / "builtins" / kind).glob("*.yaml"):
            result = writeit("validate", str(path))
            assert "valid" in result.stdout


def test_workspaces_create_use_info_remove(isolated_env):
    writeit("init")
    assert (isolated_env.writeit_home / "server-token").stat().st_mode & 0o777 == 0o600
    writeit("workspace", "create", "novel")
    listed = json.loads(writeit("workspace", "list", "--json").stdout)
    assert {w["name"] for w in listed} == {"default", "novel"}
    writeit("workspace", "use", "novel")
    assert json.loads(writeit("workspace", "info", "--json").stdout)["name"] == "novel"
    refused = writeit("workspace", "remove", "novel", "--yes", check=False)
    assert refused.returncode == 1 and "active one" in refused.stderr
    writeit("workspace", "use", "default")
    aborted = writeit("workspace", "remove", "novel", input="n\n", check=False)
    assert aborted.returncode == 1 and (isolated_env.writeit_home / "workspaces" / "novel").exists()
    writeit("workspace", "remove", "novel", "--yes")
    assert not (isolated_env.writeit_home / "workspaces" / "novel").exists()
    bad = writeit("workspace", "create", "Bad Name!", check=False)
    assert bad.returncode == 1 and "not a valid workspace name" in bad.stderr


def test_config_set_validates_and_persists(isolated_env):
    writeit("config", "set", "max_concurrent_pipelines", "5")
    writeit("config", "set", "keyboard_shortcuts.merge", "ctrl+m")
    shown = json.loads(writeit("config", "show", "--json").stdout)
    assert shown["max_concurrent_pipelines"] == 5
    assert shown["keyboard_shortcuts"] == {"merge": "ctrl+m"}
    bad = writeit("config", "set", "max_concurrent_pipelines", "lots", check=False)
    assert bad.returncode == 1 and "max_concurrent_pipelines" in bad.stderr
    unknown = writeit("config", "set", "colour", "red", check=False)
    assert "unknown preference 'colour'" in unknown.stderr
    assert json.loads(writeit("config", "show", "--json").stdout)["max_concurrent_pipelines"] == 5


def test_headless_run_with_two_models_exports_yaml(isolated_env, tmp_path):
    source = tmp_path / "notes.md"
    source.write_text("We cut deploy time from 40 to 6 minutes. Literal {{ 7*7 }} stays.")
    out = tmp_path / "article.yaml"
    result = writeit(
        "run",
        "tech-article",
        "--input",
        f"source_material=@{source}",
        "--input",
        "target_audience=platform engineers",
        "--model",
        "scripted-a",
        "--model",
        "scripted-b",
        "--headless",
        "--pick",
        "2",
        "--export",
        "yaml",
        "--out",
        str(out),
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed" and summary["export"] == str(out)
    doc = yaml.safe_load(out.read_text())
    assert doc["metadata"]["models"] == ["scripted-a", "scripted-b"]
    assert [h["step"] for h in doc["history"]] == ["angles", "outline", "draft", "polish"]
    assert all(h["selection"]["model"] == "scripted-b" for h in doc["history"])
    assert doc["inputs"]["source_material"].endswith("Literal {{ 7*7 }} stays.")
    assert doc["stats"]["tokens"] > 0
    runs = json.loads(writeit("runs", "--json").stdout)
    assert runs[0]["run_id"] == summary["run_id"] and runs[0]["status"] == "completed"
    shown = writeit("show", summary["run_id"][:8]).stdout
    assert "polish completed" in shown
    at_start = json.loads(writeit("show", summary["run_id"][:8], "--at", "1", "--json").stdout)
    assert at_start["status"] == "initializing"
    store = store_of(isolated_env.writeit_home)
    before = store.summary(summary["run_id"]).last_seq
    again = writeit("resume", summary["run_id"][:8], "--headless")
    assert "was already complete; nothing to resume" in again.stdout
    assert store.summary(summary["run_id"]).last_seq == before


def test_fork_tree_and_export_from_the_cli(isolated_env, tmp_path):
    run_id = json.loads(
        writeit(
            "run",
            "tech-article",
            "-i",
            "source_material=notes",
            "-m",
            "scripted-a",
            "--headless",
            "--json",
        ).stdout
    )["run_id"]
    forked = json.loads(writeit("fork", run_id[:8], "--step", "outline", "--json").stdout)
    assert forked["parent"] == run_id
    tree = writeit("tree", forked["run_id"][:8]).stdout
    assert run_id[:8] in tree and forked["run_id"][:8] in tree and "from outline" in tree
    md = tmp_path / "a.md"
    writeit("export", run_id[:8], "--format", "md", "--out", str(md), "--no-history")
    text = md.read_text()
    assert text.startswith("---\nrun_id: " + run_id)
    assert "Appendix" not in text


def test_export_never_overwrites_without_force(isolated_env, tmp_path):
    run_id = json.loads(
        writeit(
            "run",
            "tech-article",
            "-i",
            "source_material=notes",
            "-m",
            "scripted-a",
            "--headless",
            "--json",
        ).stdout
    )["run_id"]
    out = tmp_path / "article.md"
    out.write_text("the writer's edits")
    refused = writeit("export", run_id[:8], "--out", str(out), check=False)
    assert refused.returncode == 1
    assert f"{out} already exists" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert out.read_text() == "the writer's edits"
    writeit("export", run_id[:8], "--out", str(out), "--force")
    assert out.read_text().startswith(f"---\nrun_id: {run_id}")

    exports = isolated_env.writeit_home / "workspaces" / "default" / "exports"
    before = set(exports.iterdir()) if exports.exists() else set()
    for _ in range(2):  # the default name is never reused
        writeit("export", run_id[:8], "--format", "json")
    first, second = sorted(set(exports.iterdir()) - before, key=lambda p: len(p.name))
    assert second.name == first.stem + "-2.json"
    assert json.loads(first.read_text()) == json.loads(second.read_text())

    again = writeit(
        "run",
        "tech-article",
        "-i",
        "source_material=notes",
        "-m",
        "scripted-a",
        "--headless",
        "--export",
        "md",
        "--out",
        str(out),
        check=False,
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    assert len(store_of(isolated_env.writeit_home).recent()) == 1  # refused before running


def test_user_mistakes_get_a_message_and_a_hint_not_a_traceback():
    cases = [
        (("run", "no-such-pipeline", "--headless"), "unknown pipeline"),
        (("run", "tech-article", "--headless", "-m", "scripted-a"), "source_material is required"),
        (("run", "tech-article", "--headless", "-i", "source_material=@/nope.md"), "no file at"),
        (("run", "tech-article", "--headless", "-i", "oops"), "is not NAME=VALUE"),
        (
            ("run", "tech-article", "--headless", "-i", "source_material=x", "-m", "gpt-4o"),
            "llm keys set openai",
        ),
        (("show", "zzzz"), "no run matches"),
    ]
    for args, message in cases:
        result = writeit(*args, check=False)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_offline_run_says_which_model_it_uses(isolated_env):
    result = writeit("run", "tech-article", "-i", "source_material=a b c d e f g h", "--headless")
    assert "Using the offline model 'markov'" in result.stderr
    assert "llm keys set openai" in result.stderr
    assert "completed" in result.stdout


KILLED_CHILD = """
import asyncio, sys
sys.path.insert(0, {tests!r})
import scripted_model
scripted_model.install()
from writeit.engine import Engine

async def main():
    engine = Engine(retry_backoff=0.01)
    run = await engine.start_run("tech-article", {{"source_material": "notes for the kill test"}},
                                 models=["scripted-a", "scripted-b"])
    rid = run.pipeline_run_id
    for _ in range(2):
        await engine.execute_step(rid)
        await engine.select(rid, 0, feedback="keep going")
        await engine.accept(rid)
    gate = scripted_model.Gate(after_chunks=3, timeout=600)
    scripted_model.script("scripted-b", gate=gate)
    task = asyncio.create_task(engine.execute_step(rid))
    await gate.wait_reached(timeout=60)
    print(rid, flush=True)
    await task

asyncio.run(main())
"""


def test_a_run_killed_mid_stream_resumes_without_losing_or_duplicating(isolated_env):
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD.format(tests=str(TESTS))],
        stdout=subprocess.PIPE,
        text=True,
    )
    run_id = child.stdout.readline().strip()
    assert run_id, "the child did not reach the stream"
    store = store_of(isolated_env.writeit_home)

    def draft_checkpointed() -> bool:
        run = store.load(run_id)
        partial = [r for r in run.steps["draft"].ai_responses if r.model_name == "scripted-b"]
        return bool(partial and partial[0].raw_output)

    deadline = 200
    while not draft_checkpointed() and deadline:  # the checkpoint lands within ~0.5 s
        deadline -= 1
        time.sleep(0.05)
    # While the child streams, another process may not take its responses as orphans.
    refused = writeit("resume", run_id[:8], "--headless", check=False)
    assert refused.returncode != 0
    assert f"generating in another WriteIt process (pid {child.pid})" in refused.stderr
    assert "Traceback" not in refused.stderr
    os.kill(child.pid, signal.SIGKILL)
    # Dead but not reaped (a zombie, as a crashed child often is): its streams are orphans.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    before = store.load(run_id)
    draft = before.steps["draft"]
    assert [r.status for r in draft.candidates] == [
        ResponseStatus.COMPLETED,
        ResponseStatus.STREAMING,
    ]
    kept_a = draft.candidates[0].response_id

    writeit("resume", run_id[:8], "--headless", "--pick", "first")
    child.wait()
    after = store.load(run_id)
    assert after.status == PipelineStatus.COMPLETED
    for name in ("angles", "outline"):
        assert after.steps[name].output == before.steps[name].output
        assert after.steps[name].user_feedback == "keep going"
    draft = after.steps["draft"]
    assert [(r.model_name, r.status) for r in draft.ai_responses] == [
        ("scripted-a", ResponseStatus.COMPLETED),
        ("scripted-b", ResponseStatus.INTERRUPTED),
        ("scripted-b", ResponseStatus.COMPLETED),
    ]
    assert draft.ai_responses[1].raw_output == before.steps["draft"].candidates[1].raw_output
    assert draft.ai_responses[0].response_id == kept_a
    events = store.events(run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(e.type == EventType.RUN_CREATED for e in events) == 1
