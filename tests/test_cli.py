"""The `writeit` command as a user runs it: real processes, real store, real files."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from served import poll
from writeit_cli import run as writeit

from writeit import autopilot
from writeit.events import EventType
from writeit.models import PipelineStatus, ResponseStatus
from writeit.store import Store

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def headless_run() -> str:
    """A whole tech-article run on the scripted model, as `writeit run --headless` does."""
    args = ("-i", "source_material=notes", "-m", "scripted-a", "--headless", "--json")
    return json.loads(writeit("run", "tech-article", *args).stdout)["run_id"]


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
    writeit("config", "set", "keyboard_shortcuts.merge", "ctrl+e")
    shown = json.loads(writeit("config", "show", "--json").stdout)
    assert shown["max_concurrent_pipelines"] == 5
    assert shown["keyboard_shortcuts"] == {"merge": "ctrl+e"}
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
    run_id = headless_run()
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
    run_id = headless_run()
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


# --- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,usage,message",
    [
        (("frobnicate",), "Usage: writeit [OPTIONS] COMMAND [ARGS]...", "No such command"),
        (("run", "--nope", "x"), "Usage: writeit run [OPTIONS]", "No such option: --nope"),
        (
            ("runs", "--limit", "abc"),
            "Usage: writeit runs [OPTIONS]",
            "Invalid value for '--limit'",
        ),
    ],
)
def test_a_typo_prints_the_usage_line_and_a_hint_and_exits_2(args, usage, message):
    result = writeit(*args, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith(usage)
    command = usage.split(" [OPTIONS]")[0].removeprefix("Usage: ")
    assert f"Try '{command} --help' for help." in result.stderr
    assert f"Error: {message}" in result.stderr


def test_workspace_help_says_what_the_group_manages():
    shown = writeit("workspace", "--help").stdout
    assert "Create, list, switch and remove workspaces." in shown
    assert "_ws()" not in shown


# --- rewind ----------------------------------------------------------------------------------


async def test_rewind_goes_back_a_step_and_says_what_next(engine):
    run = await engine.start_run(
        "tech-article", {"source_material": "notes"}, models=["scripted-a"]
    )
    run_id = run.pipeline_run_id
    await autopilot.drive(engine, run_id, "first")
    short = run_id[:8]

    back = writeit("rewind", short)
    assert f"Run {short} is back at draft (step 3 of 4)" in back.stdout
    assert f"writeit resume {short}" in back.stdout
    assert "--headless" not in back.stdout  # a completed run: nothing to resume headless
    shown = json.loads(writeit("show", short, "--json").stdout)
    assert shown["current_step"] == "draft"
    assert shown["steps"]["polish"]["status"] == "completed"  # nothing lost

    first = json.loads(writeit("rewind", short, "--step", "angles", "--json").stdout)
    assert first == {
        "run_id": run_id,
        "step": "angles",
        "step_number": 1,
        "steps": 4,
        "status": "completed",
    }


async def test_rewind_refusals_show_the_engines_message_and_hint(engine):
    run = await engine.start_run(
        "tech-article", {"source_material": "notes"}, models=["scripted-a"]
    )
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.select(run_id, 0)
    await engine.accept(run_id)  # at the outline, which has not run
    short = run_id[:8]
    cases = {  # --step: the engine's message and hint
        "outline": ("error: step 'outline' has not run yet", ""),
        "polish": (
            "error: 'polish' comes after the current step 'outline'",
            "hint: rewind goes back; accept the current step to go on",
        ),
        "nope": (
            "error: pipeline 'tech-article' has no step 'nope'",
            "hint: steps are: angles, outline, draft, polish",
        ),
    }
    for step, (message, hint) in cases.items():
        refused = writeit("rewind", short, "--step", step, check=False)
        assert refused.returncode == 1, step
        assert message in refused.stderr and hint in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr

    back = writeit("rewind", short)
    assert f"Run {short} is back at angles (step 1 of 4)" in back.stdout
    assert f"writeit resume {short} --headless" in back.stdout  # the run is not finished
    first = writeit("rewind", short, check=False)
    assert first.returncode == 1 and "error: already at the first step" in first.stderr
    assert "Traceback" not in first.stderr


# --- resume --model ---------------------------------------------------------------------------


async def failed_run(engine, scripted) -> str:
    """A run whose only model failed at the angles (in this process: the CLI's scripted-b
    works again, which the tests below rely on for the later steps)."""
    scripted.script("scripted-b", fail="quota exceeded")
    run = await engine.start_run(
        "tech-article", {"source_material": "notes"}, models=["scripted-b"]
    )
    run = await engine.execute_step(run.pipeline_run_id)
    assert run.status == PipelineStatus.ERROR
    return run.pipeline_run_id


def angles_models(run_id: str) -> list[tuple[str, str]]:
    shown = json.loads(writeit("show", run_id[:8], "--json").stdout)
    return [(r["model_name"], r["status"]) for r in shown["steps"]["angles"]["ai_responses"]]


async def test_resume_headless_with_model_asks_it_in_place_of_the_failed(engine, scripted):
    run_id = await failed_run(engine, scripted)
    result = writeit(
        "resume", run_id[:8], "--headless", "--model", "scripted-c", "--pick", "first", "--json"
    )
    assert json.loads(result.stdout)["status"] == "completed"
    assert angles_models(run_id) == [("scripted-b", "failed"), ("scripted-c", "completed")]
    shown = json.loads(writeit("show", run_id[:8], "--json").stdout)
    angles = shown["steps"]["angles"]
    assert angles["ai_responses"][angles["user_selection"]]["model_name"] == "scripted-c"


async def test_resume_with_a_model_that_fails_too_stops_there(engine, scripted, openai_server):
    run_id = await failed_run(engine, scripted)
    refused = writeit("resume", run_id[:8], "--headless", "--model", "oai-401", check=False)
    assert refused.returncode == 1
    assert "step 'angles' failed with oai-401" in refused.stderr
    assert "--model MODEL" in refused.stderr and "Traceback" not in refused.stderr
    # the step's own model was not asked again behind the writer's back
    assert angles_models(run_id) == [("scripted-b", "failed"), ("oai-401", "failed")]


async def test_resume_with_a_model_that_needs_a_key_says_how_to_add_it(engine, scripted):
    run_id = await failed_run(engine, scripted)
    refused = writeit("resume", run_id[:8], "--headless", "--model", "gpt-4o", check=False)
    assert refused.returncode == 1
    assert "model 'gpt-4o' needs an API key" in refused.stderr
    assert "llm keys set openai" in refused.stderr and "Traceback" not in refused.stderr
    assert angles_models(run_id) == [("scripted-b", "failed")]  # nothing was asked


def test_resume_model_in_the_tui_is_refused_with_a_pointer_to_headless():
    refused = writeit("resume", "3f2a", "--model", "scripted-c", check=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith("Usage: writeit resume [OPTIONS]")
    assert "works with --headless only" in refused.stderr
    assert "writeit resume 3f2a --headless --model scripted-c" in refused.stderr
    assert "Traceback" not in refused.stderr


# --- shell completion ---------------------------------------------------------------------------


def complete(line: str) -> list[str]:
    """What bash completion offers for `line` (the last word being completed)."""
    words = line.split(" ")
    env = {
        "_WRITEIT_COMPLETE": "complete_bash",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }
    return writeit(env=env).stdout.split()


def test_bash_completion_offers_pipelines_styles_and_runs(engine):
    assert complete("writeit run ") == ["blog-post", "research-summary", "tech-article"]
    assert complete("writeit run te") == ["tech-article"]
    assert complete("writeit run tech-article --style exec") == ["executive-brief"]
    assert complete("writeit show ") == []  # no runs yet, and no error either
    run_id = writeit(
        "run", "tech-article", "-i", "source_material=x", "-m", "scripted-a", "--headless", "--json"
    ).stdout
    run_id = json.loads(run_id)["run_id"]
    assert complete("writeit show ") == [run_id[:8]]
    assert complete(f"writeit rewind {run_id[:2]}") == [run_id[:8]]
    assert complete(f"writeit resume {run_id[:10]}") == [run_id[:10]]


def test_show_completion_prints_the_bash_script():
    script = writeit(
        "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    ).stdout
    assert "_WRITEIT_COMPLETE=complete_bash" in script
    assert "complete -o default -F _writeit_completion writeit" in script


def test_completion_callbacks_are_plain_functions(isolated_env):
    from writeit.cli import complete as cli

    no_flags = SimpleNamespace(params={}, parent=None)
    assert cli.complete_pipeline(no_flags, "b") == ["blog-post"]
    assert cli.complete_style(no_flags, "") == [
        "conversational-blog",
        "executive-brief",
        "tech-journalist",
    ]
    models = dict(cli.complete_model("scripted-"))
    assert {"scripted-a", "scripted-b", "scripted-sync"} <= set(models)
    assert all(name.startswith("scripted-") for name in models)
    assert [name for name, _ in cli.complete_model("mark")] == ["markov"]
    writeit("workspace", "create", "novel")
    assert cli.complete_workspace("n") == ["novel"]
    # a workspace given on the command line is the one completed from
    novel = SimpleNamespace(
        params={}, parent=SimpleNamespace(params={"workspace": "novel"}, parent=None)
    )
    (isolated_env.writeit_home / "workspaces" / "novel" / "pipelines" / "memo.yaml").write_text("x")
    assert "memo" in cli.complete_pipeline(novel, "") and "memo" not in cli.complete_pipeline(
        no_flags, ""
    )
    assert cli.complete_run(novel, "") == []  # no store there yet


async def test_run_completion_lists_recent_runs_with_what_they_are(engine):
    from writeit.cli import complete as cli

    run = await engine.start_run(
        "tech-article", {"source_material": "notes"}, models=["scripted-a"]
    )
    no_flags = SimpleNamespace(params={}, parent=None)
    assert cli.complete_run(no_flags, run.pipeline_run_id[:3]) == [
        (run.pipeline_run_id[:8], "tech-article initializing at angles")
    ]
    assert cli.complete_run(no_flags, "zzzz") == []


def test_a_failing_completion_offers_nothing(isolated_env):
    from writeit.cli import complete as cli

    bad = SimpleNamespace(params={"workspace": "Not A Name!"}, parent=None)
    assert cli.complete_run(bad, "") == []
    assert cli.complete_pipeline(bad, "") == []


# --- diff ----------------------------------------------------------------------------------------

DRAFT_A = """We moved 140 nightly cron jobs to Temporal in six weeks.

Failures fell from 12 a month to 2, because the retries became visible.
"""
DRAFT_B = DRAFT_A.replace("six weeks", "five weeks").replace("became visible", "became loud")


def changed_ops(shown: dict) -> list[tuple[str, str]]:
    return [(o["op"], o["text"]) for o in shown["ops"] if o["op"] != "equal"]


async def two_candidates(engine, scripted) -> str:
    scripted.script("scripted-a", replies=[DRAFT_A])
    scripted.script("scripted-b", replies=[DRAFT_B])
    run = await engine.start_run(
        "tech-article", {"source_material": "notes"}, models=["scripted-a", "scripted-b"]
    )
    await engine.execute_step(run.pipeline_run_id)
    return run.pipeline_run_id


async def test_diff_shows_the_words_two_candidates_differ_in(engine, scripted):
    run_id = await two_candidates(engine, scripted)
    short = run_id[:8]
    shown = writeit("diff", short).stdout.splitlines()
    assert shown[:3] == [
        f"[-] candidate 1 (scripted-a) of angles, run {short}",
        f"[+] candidate 2 (scripted-b) of angles, run {short}",
        "2 words added, 2 removed",
    ]
    body = "\n".join(shown[4:])
    assert "Temporal in [-six-]{+five+} weeks." in body
    assert "the retries became [-visible-]{+loud+}." in body

    as_json = json.loads(writeit("diff", short, "2", "1", "--json").stdout)
    assert changed_ops(as_json) == [
        ("delete", "five"),
        ("insert", "six"),
        ("delete", "loud"),
        ("insert", "visible"),
    ]
    assert "".join(o["text"] for o in as_json["ops"] if o["op"] != "insert") == DRAFT_B.strip()
    candidates = engine.load(run_id).steps["angles"].candidates
    assert as_json["a"] == {
        "run_id": run_id,
        "step": "angles",
        "response_id": candidates[1].response_id,
        "model": "scripted-b",
        "attempt": 1,
        "status": "completed",
        "candidate": 2,
    }
    assert (as_json["b"]["candidate"], as_json["b"]["model"]) == (1, "scripted-a")


async def test_diff_refusals_say_what_to_do(engine, scripted):
    run_id = await two_candidates(engine, scripted)
    short = run_id[:8]
    cases = {
        ("3",): (
            "error: there is no candidate 3 at step 'angles': it has 2",
            f"hint: choose 1 to 2, e.g. writeit diff {short} 1 2 --step angles",
        ),
        ("--step", "outline"): (
            f"error: step 'outline' of run {short} has no candidates",
            "hint: steps with candidates: angles (choose one with --step)",
        ),
        ("1", "2", "3"): (
            "error: expected two candidate numbers or one other run, got: 1 2 3",
            f"hint: e.g. writeit diff {short} 1 3 --step outline",
        ),
        ("--step", "nope"): (
            "error: pipeline 'tech-article' has no step 'nope'",
            "hint: steps are",
        ),
        (short,): (f"error: run {short} has no chosen text yet", f"writeit diff {short}"),
    }
    for args, (message, hint) in cases.items():
        refused = writeit("diff", short, *args, check=False)
        assert refused.returncode == 1, args
        assert message in refused.stderr and hint in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


async def test_diff_of_a_fork_against_its_parent_compares_their_articles(
    engine, fork_with_a_new_polish
):
    parent, child, forked = await fork_with_a_new_polish()
    assert engine.load(child).final_text == forked.strip()

    shown = writeit("diff", parent[:8], child[:8]).stdout.splitlines()
    assert shown[:3] == [
        f"[-] article, run {parent[:8]} (completed)",
        f"[+] article, run {child[:8]} (completed)",
        "1 word added, 2 removed",
    ]
    assert "\n".join(shown[4:]) == (
        "# [-Six-]{+Seven+} weeks to Temporal\n\nWe moved 140 [-nightly-] jobs; failures fell "
        "to 2 a month."
    )
    as_json = json.loads(writeit("diff", parent[:8], child[:8], "--json").stdout)
    assert changed_ops(as_json) == [("delete", "Six"), ("insert", "Seven"), ("delete", "nightly ")]
    assert as_json["a"] == {"run_id": parent, "step": "polish", "status": "completed"}
    assert as_json["b"] == {"run_id": child, "step": "polish", "status": "completed"}

    outlines = json.loads(
        writeit("diff", parent[:8], child[:8], "--step", "outline", "--json").stdout
    )
    assert changed_ops(outlines) == []  # the fork shares the parent's outline


async def test_diff_of_a_single_candidate_shows_what_regenerating_changed(engine, scripted):
    scripted.script("scripted-a", replies=[DRAFT_A, DRAFT_B])
    run = await engine.start_run("tech-article", {"source_material": "n"}, models=["scripted-a"])
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    refused = writeit("diff", run_id[:8], check=False)
    assert refused.returncode == 1
    assert "step 'angles' has only one candidate and no earlier attempt" in refused.stderr
    await engine.regenerate(run_id)
    await engine.wait(run_id)
    shown = json.loads(writeit("diff", run_id[:8], "--json").stdout)
    assert changed_ops(shown) == [
        ("delete", "six"),
        ("insert", "five"),
        ("delete", "visible"),
        ("insert", "loud"),
    ]
    assert (shown["a"]["attempt"], shown["b"]["attempt"], shown["b"]["candidate"]) == (1, 2, 1)


# --- headless runs a writer can stop and follow ------------------------------------------


class Headless:
    """`writeit run tech-article --headless ...` as a child process, its stderr read as it
    comes (not a terminal: one progress line per response start and end)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, str(TESTS / "writeit_cli.py"), "run", "tech-article"]
        self.process = subprocess.Popen(
            [*command, "-i", "source_material=notes on the queue", *args, "--headless"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str) -> None:
        poll(lambda: text in self.stderr or self.process.poll() is not None, 60, repr(text))
        assert text in self.stderr, self.stderr

    def finish(self) -> int:
        """The exit code (the process is killed if it does not end on its own)."""
        try:
            code = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running after the signal:\n{self.stderr}") from None
        self._reader.join(10)
        return code


def only_run(store: Store):
    found = store.recent(limit=5)
    assert len(found) == 1, found
    return store.load(found[0].run_id)


def streamed_text(store: Store, model: str) -> bool:
    """The stalled model's first chunks are checkpointed in the store."""
    found = store.recent(limit=1)
    if not found:
        return False
    angles = store.load(found[0].run_id).steps["angles"]
    return any(r.model_name == model and r.raw_output for r in angles.ai_responses)


@pytest.mark.parametrize("number,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_pauses_a_headless_run_with_a_hung_model_and_picks_nothing(
    isolated_env, openai_server, number, code
):
    child = Headless("-m", "oai-stall", "-m", "oai-ok", "--pick", "best")
    child.wait_for("angles · oai-ok: done")  # progress while models write, not at the end
    assert "angles · oai-stall: started" in child.stderr
    store = store_of(isolated_env.writeit_home)
    poll(lambda: streamed_text(store, "oai-stall"), 30, "the stalled stream's checkpoint")
    os.kill(child.process.pid, number)
    assert child.finish() == code, child.stderr
    run = only_run(store)
    short = run.pipeline_run_id[:8]
    assert f"writeit resume {short} --headless" in child.stderr
    assert "Traceback" not in child.stderr and "error" not in child.stderr
    assert run.status == PipelineStatus.PAUSED and run.current_step == "angles"
    angles = run.steps["angles"]
    by_model = {r.model_name: r for r in angles.ai_responses}
    assert by_model["oai-ok"].status == ResponseStatus.COMPLETED
    stalled = by_model["oai-stall"]
    assert stalled.status == ResponseStatus.INTERRUPTED and stalled.raw_output  # text kept
    assert "chose another candidate" not in (stalled.error or "")
    # The stop was not taken for a choice: no selection, no step past angles.
    assert angles.user_selection is None
    assert EventType.RESPONSE_SELECTED not in {e.type for e in store.events(run.pipeline_run_id)}
    assert "angles: selected" not in child.stderr
    assert "angles · oai-stall: stopped" in child.stderr


def test_ctrl_c_with_one_hung_model_pauses_the_run_and_says_how_to_resume(
    isolated_env, openai_server
):
    child = Headless("-m", "oai-stall")
    child.wait_for("angles · oai-stall: started")
    store = store_of(isolated_env.writeit_home)
    poll(lambda: streamed_text(store, "oai-stall"), 30, "the stalled stream's checkpoint")
    os.kill(child.process.pid, signal.SIGINT)
    assert child.finish() == 130, child.stderr
    assert "no candidate completed" not in child.stderr
    run = only_run(store)
    assert run.status == PipelineStatus.PAUSED
    [stalled] = run.steps["angles"].ai_responses
    assert stalled.status == ResponseStatus.INTERRUPTED and stalled.raw_output
    assert f"writeit resume {run.pipeline_run_id[:8]} --headless" in child.stderr


def test_a_second_ctrl_c_exits_at_once(isolated_env, openai_server):
    """The first stop cannot finish (the test holds the store's write lock, so the
    stopped streams cannot be recorded); the second Ctrl+C ends the process anyway."""
    child = Headless("-m", "oai-stall")
    store = store_of(isolated_env.writeit_home)
    poll(lambda: streamed_text(store, "oai-stall"), 30, "the stalled stream's checkpoint")
    lock = store.env.begin(write=True)
    try:
        os.kill(child.process.pid, signal.SIGINT)
        child.wait_for("Stopping")
        os.kill(child.process.pid, signal.SIGINT)
        assert child.finish() == 130, child.stderr
        assert "Stopped at once" in child.stderr and "Traceback" not in child.stderr
    finally:
        lock.abort()
    # What was checkpointed before the stop is there; the dead stream reads as interrupted.
    shown = json.loads(writeit("show", only_run(store).pipeline_run_id, "--json").stdout)
    [stalled] = shown["steps"]["angles"]["ai_responses"]
    assert stalled["raw_output"] and stalled["status"] == "interrupted"


def test_pick_n_says_when_candidate_n_failed(isolated_env, openai_server):
    result = writeit(
        "run", "tech-article", "-i", "source_material=notes", "-m", "oai-ok", "-m", "oai-401",
        "--headless", "--pick", "2",
    )  # fmt: skip
    assert "angles: candidate 2 failed; picked candidate 1" in result.stderr
    assert "polish: candidate 2 failed; picked candidate 1" in result.stderr
    assert "completed" in result.stdout


def test_a_budget_that_refuses_the_first_step_prints_no_empty_table(isolated_env):
    writeit("config", "set", "pricing.scripted-a.input", "1000")
    writeit("config", "set", "pricing.scripted-a.output", "1000")
    args = ("-i", "source_material=notes", "-m", "scripted-a", "--budget", "0.000001")
    for terminal in ("1", "0"):  # a live table in a terminal; lines otherwise
        refused = writeit(
            "run", "tech-article", *args, "--headless", check=False,
            env={"TTY_COMPATIBLE": terminal},
        )  # fmt: skip
        assert refused.returncode == 3, refused.stderr
        assert "budget reached" in refused.stderr
        assert "Chars" not in refused.stderr and "Status" not in refused.stderr


def test_in_a_terminal_the_progress_table_shows_each_response(isolated_env):
    done = writeit(
        "run", "tech-article", "-i", "source_material=notes", "-m", "scripted-a",
        "--headless", "--pick", "first", env={"TTY_COMPATIBLE": "1"},
    )  # fmt: skip
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", done.stderr)  # colours, cursor moves
    assert "Chars" in shown and "Status" in shown
    for step in ("angles", "outline", "draft", "polish"):
        assert f"{step}: selected" in shown
        assert re.search(rf"{step} +scripted-a +\d+ +done \d+ tok", shown), shown
    assert "· scripted-a" not in shown  # the table, not the lines meant for logs


def test_fork_prints_the_parents_short_id_not_the_typed_prefix(isolated_env):
    run_id = headless_run()
    forked = writeit("fork", run_id[:4], "--step", "outline").stdout
    assert f"from {run_id[:8]} at outline" in forked
