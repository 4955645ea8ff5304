"""Provider streaming and faults through the real llm/openai code path on loopback."""

import asyncio
import contextlib

import pytest

from writeit import providers
from writeit.models import PipelineStatus, ResponseStatus, StepStatus


async def test_streams_from_an_openai_compatible_server_with_usage(openai_server):
    chunks = []
    result = await providers.stream("oai-ok", "Tell me about queues", on_delta=chunks.append)
    assert "".join(chunks) == result.text
    assert "Tell me about" in result.text
    assert len(chunks) > 1
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert not result.estimated_usage
    assert result.provider == "openai-compatible"
    assert openai_server.authorizations == ["Bearer DUMMY_KEY"]


@pytest.mark.parametrize(
    "model,code,message,requests",
    [
        ("oai-500", "server", "server error (500)", 3),
        ("oai-429", "rate_limited", "rate limited (429)", 3),
        ("oai-401", "auth", "Incorrect API key provided", 1),
    ],
)
async def test_http_faults_are_classified_and_retried_a_bounded_number_of_times(
    openai_server, model, code, message, requests
):
    with pytest.raises(providers.ProviderError) as info:
        await providers.stream(model, "hello", retries=2, backoff=0.001)
    assert info.value.code == code
    assert message in str(info.value)
    assert openai_server.count(model) == requests


async def test_a_flaky_server_succeeds_on_retry(openai_server):
    result = await providers.stream("oai-flaky", "hello", retries=2, backoff=0.001)
    assert result.attempts == 2 and result.text


async def test_a_silent_server_times_out(openai_server):
    with pytest.raises(providers.ProviderError) as info:
        await providers.stream("oai-timeout", "hello", timeout=0.5, retries=0)
    assert info.value.code == "timeout"


async def test_a_stream_that_stalls_mid_way_times_out(openai_server):
    seen = []
    with pytest.raises(providers.ProviderError) as info:
        await providers.stream("oai-stall", "hello", timeout=0.5, retries=2, on_delta=seen.append)
    assert info.value.code == "timeout"
    assert seen  # text already shown is never retried, so never duplicated
    assert openai_server.count("oai-stall") == 1


async def test_the_timeout_is_for_silence_not_for_a_long_steady_stream(openai_server):
    openai_server.slow_delay = 0.1  # every chunk well inside the timeout...
    chunks = []
    result = await providers.stream(
        "oai-slow", "hello", timeout=0.3, retries=0, on_delta=chunks.append
    )
    assert len(chunks) >= 5  # ...while the whole answer takes longer than it
    assert result.duration > 0.3 and result.attempts == 1


async def test_a_dropped_connection_fails_without_retrying(openai_server):
    seen = []
    with pytest.raises(providers.ProviderError) as info:
        await providers.stream("oai-drop", "hello", retries=2, on_delta=seen.append)
    assert info.value.code == "connection"
    assert seen and openai_server.count("oai-drop") == 1


async def test_unknown_models_are_named():
    with pytest.raises(providers.ProviderError, match="unknown model 'nope'") as info:
        await providers.stream("nope", "hello")
    assert "writeit models" in info.value.hint


async def test_sync_only_models_stream_through_a_worker_thread(scripted):
    chunks = []
    result = await providers.stream("scripted-sync", "sync please", on_delta=chunks.append)
    assert "".join(chunks) == result.text and result.text.startswith("[scripted] scripted-sync")
    assert scripted.calls[0]["mode"] == "sync"


async def test_markov_runs_offline_with_estimated_usage():
    result = await providers.stream(
        "markov", "one two three four five six", options={"temperature": 0.7}
    )
    assert len(result.text.split()) > 10
    assert result.estimated_usage and result.output_tokens > 0


async def test_no_default_key_goes_to_a_host_configured_for_another_key(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-secret")
    openai_server.add_llm_model("oai-other-key", "ok", api_key_name="otherhost")
    providers.forget_models()
    with pytest.raises(providers.ProviderError) as info:
        await providers.stream("oai-other-key", "hello")
    assert info.value.code == "needs_key"
    assert all("sk-real-secret" not in a for a in openai_server.authorizations)


async def test_one_faulty_provider_of_two_leaves_a_completed_step(engine, openai_server, source):
    run = await engine.start_run(
        "tech-article", {"source_material": source}, models=["oai-ok", "oai-500"]
    )
    run = await engine.execute_step(run.pipeline_run_id)
    ok, bad = run.steps["angles"].candidates
    assert ok.status == ResponseStatus.COMPLETED and ok.usage_stats.total_tokens > 0
    assert bad.status == ResponseStatus.FAILED and "500" in bad.error
    run = await engine.select(run.pipeline_run_id, 0)
    assert run.steps["angles"].status == StepStatus.COMPLETED
    assert run.status == PipelineStatus.RUNNING


async def test_every_fault_becomes_a_failed_response_not_a_crash(engine, openai_server, source):
    engine.preferences.request_timeout = 0.5
    models = ["oai-500", "oai-429", "oai-401", "oai-timeout", "oai-drop", "oai-ok"]
    run = await engine.start_run("tech-article", {"source_material": source}, models=models)
    run = await asyncio.wait_for(engine.execute_step(run.pipeline_run_id), 30)
    statuses = {r.model_name: (r.status, r.error) for r in run.steps["angles"].candidates}
    assert statuses["oai-ok"][0] == ResponseStatus.COMPLETED
    for model in models[:-1]:
        assert statuses[model][0] == ResponseStatus.FAILED, model
        assert statuses[model][1]
    assert "Incorrect API key" in statuses["oai-401"][1]


async def test_the_idle_timeout_is_a_timeout_even_after_other_cancels_were_handled():
    task = asyncio.current_task()
    task.cancel()  # a cancel some caller handled earlier (as a pause does)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with providers.IdleTimeout(0.05):
            await asyncio.sleep(5)

    class Closed(Exception):
        pass

    with pytest.raises(Closed):  # a client library turns our cancel into its own error...
        async with providers.IdleTimeout(0.05):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                raise Closed from None
    with pytest.raises(TimeoutError):  # ...and the retry's timeout is still a timeout
        async with providers.IdleTimeout(0.05):
            await asyncio.sleep(5)
    assert task.cancelling() == 1  # only the earlier, handled cancel is left on the task
