"""Every model call WriteIt makes is in the writer's own `llm logs` (llm's logs.db in
LLM_USER_PATH, a tmp dir here), read back with the project's real `llm` command."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys

from writeit_cli import run

from writeit import llmlog

SOURCE = "Notes: 140 nightly jobs moved to Temporal; failures fell to 2 a month."


def llm(*args: str) -> str:
    """`llm ARGS` of this environment, as the writer would type it (a child process)."""
    done = subprocess.run(
        [sys.executable, "-m", "llm", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def llm_here(*args: str) -> str:
    """The same `llm` command run in this process (a child costs a second to start)."""
    from click.testing import CliRunner
    from llm.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def logged(*args: str) -> list[dict]:
    return json.loads(llm_here("logs", *args, "--json"))


async def drive(engine, model: str) -> str:
    from writeit import autopilot

    run = await engine.start_run("tech-article", {"source_material": SOURCE}, models=[model])
    await autopilot.drive(engine, run.pipeline_run_id, "first")
    await engine.logged()  # the log is written in the background
    return run.pipeline_run_id


def headless_run(model: str = "scripted-a") -> str:
    """A whole tech-article run in a child process; its run id."""
    out = run(
        "run", "tech-article", "-i", f"source_material={SOURCE}", "-m", model, "--headless",
        "--pick", "first", "--json",
    ).stdout  # fmt: skip
    return json.loads(out)["run_id"]


def test_a_headless_run_puts_its_four_calls_in_llm_logs_one_conversation_a_step():
    run_id = headless_run()
    shown = run("show", run_id, "--json").stdout
    state = json.loads(shown)
    rows = json.loads(llm("logs", "-n", "4", "--json"))
    assert len(rows) == 4
    by_step = {row["conversation_name"].rsplit(" ", 1)[1]: row for row in rows}
    assert sorted(by_step) == ["angles", "draft", "outline", "polish"]
    for step, row in by_step.items():
        response = state["steps"][step]["ai_responses"][0]
        assert row["conversation_name"] == f"WriteIt tech-article {run_id[:8]} {step}"
        assert row["conversation_id"] == f"writeit-{run_id}-{step}"
        assert row["model"] == "scripted-a"
        assert row["prompt"] == state["steps"][step]["prompt"]
        assert row["system"].strip() == state["style_prompt"].strip()
        assert row["response"] == response["raw_output"]
        assert row["input_tokens"] == len(row["prompt"].split())  # the model's own usage
        assert row["output_tokens"] == len(row["response"].split())
    assert SOURCE in by_step["angles"]["prompt"]
    [angles] = json.loads(llm("logs", "--cid", f"writeit-{run_id}-angles", "--json"))
    assert angles["id"] == by_step["angles"]["id"]
    listed = run("show", run_id).stdout
    assert f"llm logs --cid writeit-{run_id}-outline" in listed


async def test_after_llm_logs_off_a_run_adds_nothing(engine):
    await drive(engine, "scripted-a")
    assert len(logged("-n", "0")) == 4
    llm_here("logs", "off")
    await drive(engine, "scripted-b")
    assert len(logged("-n", "0")) == 4
    llm_here("logs", "on")
    await drive(engine, "scripted-b")
    assert len(logged("-n", "0")) == 8


async def test_merges_and_judges_share_the_steps_conversation(engine, scripted):
    run = await engine.start_run(
        "tech-article", {"source_material": SOURCE}, models=["scripted-a", "scripted-b"]
    )
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.merge(run_id, [0, 1], model="scripted-c", instruction="keep both firsts")
    await engine.judge(run_id, "scripted-c")
    await engine.logged()
    rows = logged("--cid", llmlog.conversation_id(run_id, "angles"))
    assert sorted(row["model"] for row in rows) == [
        "scripted-a",
        "scripted-b",
        "scripted-c",
        "scripted-c",
    ]
    asked = {call["prompt"] for call in scripted.calls}
    assert {row["prompt"] for row in rows} == asked  # merge and judge prompts as sent


async def test_the_log_to_llm_preference_turns_it_off_for_writeit_alone(engine, preferences):
    preferences.log_to_llm = False
    run = await engine.start_run("tech-article", {"source_material": SOURCE}, models=["scripted"])
    await engine.execute_step(run.pipeline_run_id)
    await engine.logged()
    assert not llmlog.logs_path().exists() or logged("-n", "0") == []


async def test_a_logs_db_that_cannot_be_written_does_not_fail_the_run(engine, caplog):
    llmlog.logs_path().mkdir()  # a folder where the database should be
    caplog.set_level(logging.WARNING, logger="writeit.llmlog")
    run = await engine.start_run("tech-article", {"source_material": SOURCE}, models=["scripted"])
    done = await engine.execute_step(run.pipeline_run_id)
    await engine.logged()
    [response] = done.steps["angles"].ai_responses
    assert response.status.value == "completed" and response.raw_output
    assert done.status.value == "running"
    [warning] = [r for r in caplog.records if r.name == "writeit.llmlog"]
    assert "not recorded in llm's logs" in warning.getMessage()
    assert str(llmlog.logs_path()) in warning.getMessage()


async def test_a_forks_conversations_name_where_each_step_was_asked(engine, fork_with_a_new_polish):
    parent, child, _ = await fork_with_a_new_polish()
    await engine.logged()
    found = llmlog.conversations(engine.load(child))
    assert found["polish"][0] == llmlog.conversation_id(child, "polish")
    assert llmlog.conversation_id(parent, "angles") in found["angles"]
    for step, ids in found.items():  # every step's calls are under one of its names
        assert any(logged("--cid", cid) for cid in ids), step
    [polish] = logged("--cid", llmlog.conversation_id(child, "polish"))
    assert "Seven" in polish["response"]


async def test_a_step_is_the_writers_while_its_calls_are_still_being_logged(engine):
    run = await engine.start_run("tech-article", {"source_material": SOURCE}, models=["scripted"])
    with llmlog._writing:  # logs.db is busy (another process, a first migration)
        # (were the log awaited, the step would not end while logs.db is busy)
        done = await asyncio.wait_for(engine.execute_step(run.pipeline_run_id), 20)
        chosen = await engine.select(run.pipeline_run_id, 0)  # not "still generating"
        assert chosen.steps["angles"].decision.how == "selected"
        assert not llmlog.logs_path().exists() or logged("-n", "0") == []
    await engine.logged()
    [row] = logged("-n", "0")
    assert row["response"] == done.steps["angles"].ai_responses[0].raw_output
