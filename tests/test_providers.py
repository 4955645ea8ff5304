"""Provider streaming and faults through the real llm/openai code path on loopback."""

import asyncio
import contextlib
import json

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


# --- retries follow the provider -------------------------------------------------------------


async def test_the_provider_and_the_status_decide_whether_to_retry(openai_server):
    """One retry layer (ours): `x-should-retry` wins, then 408/409/429/5xx retry, other 4xx
    never; each case counted in requests the server received."""
    cases = [  # behaviour, headers on the error, requests expected with retries=3
        ("http500", {"x-should-retry": "false"}, 1),
        ("http400", {"x-should-retry": "true"}, 4),
        ("http500", {}, 4),
        ("http503", {}, 4),
        ("http408", {}, 4),
        ("http409", {}, 4),
        ("http429", {}, 4),
        ("http400", {}, 1),
        ("http401", {}, 1),
        ("http404", {}, 1),
        ("http422", {}, 1),
    ]
    for number, (behaviour, headers, expected) in enumerate(cases):
        name = f"{behaviour}-case{number}"
        openai_server.add_llm_model(f"oai-{name}", name)
        openai_server.error_headers = headers
        with pytest.raises(providers.ProviderError) as info:
            await providers.stream(f"oai-{name}", "hello", retries=3, backoff=0.001)
        assert (openai_server.count(name), info.value.retryable) == (
            expected,
            expected > 1,
        ), (behaviour, headers)
        if headers.get("x-should-retry") == "false":
            assert "the provider says not to retry" in str(info.value)


async def test_retry_after_is_waited_for_and_capped(openai_server, monkeypatch):
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(providers, "_sleep", record)
    openai_server.retry_after_ms = "250"  # preferred over Retry-After, as openai does
    with pytest.raises(providers.ProviderError):
        await providers.stream("oai-429", "hello", retries=2, backoff=5)
    assert waits == [0.25, 0.25] and openai_server.count("oai-429") == 3

    waits.clear()
    openai_server.add_llm_model("oai-503", "http503")
    openai_server.error_headers = {"Retry-After": "7"}
    with pytest.raises(providers.ProviderError):
        await providers.stream("oai-503", "hello", retries=1, backoff=5)
    assert waits == [7.0] and openai_server.count("oai-503") == 2

    waits.clear()
    openai_server.retry_after, openai_server.retry_after_ms = "120", None
    openai_server.add_llm_model("oai-429-long", "http429-long")
    with pytest.raises(providers.ProviderError) as info:
        await providers.stream("oai-429-long", "hello", retries=2, backoff=5)
    assert waits == [] and openai_server.count("oai-429-long") == 1
    assert "asks to wait 120 s" in str(info.value) and info.value.code == "rate_limited"
    assert not info.value.retryable and "try again later" in info.value.hint


# --- credentials never reach stored or shown text --------------------------------------------

LEAKY_KEY = "wk-live-0123456789abcdef"


@pytest.fixture
def leaky_model(openai_server, isolated_env):
    """`oai-leak`: a provider whose 401 echoes the key it was sent, configured with a key."""
    keys = isolated_env.llm_user_path / "keys.json"
    keys.write_text(json.dumps({"leakhost": LEAKY_KEY}))
    openai_server.add_llm_model("oai-leak", "leak401", api_key_name="leakhost")
    providers.forget_models()
    return "oai-leak"


async def test_a_provider_error_echoing_the_key_is_scrubbed(openai_server, leaky_model):
    with pytest.raises(providers.ProviderError) as info:
        await providers.stream(leaky_model, "hello")
    assert openai_server.authorizations == [f"Bearer {LEAKY_KEY}"]  # the key was sent...
    message = str(info.value)
    assert LEAKY_KEY not in message and "0123456789" not in message  # ...and never echoed
    assert "not authorised (401): Invalid request (Authorization: ***)" in message
    assert "The key *** was rejected for api_key=***" in message


async def test_stored_and_exported_errors_carry_no_key(engine, openai_server, leaky_model, source):
    from writeit import export

    run = await engine.start_run(
        "tech-article", {"source_material": source}, models=[leaky_model, "oai-ok"]
    )
    await engine.execute_step(run.pipeline_run_id)
    stored = engine.store.load(run.pipeline_run_id)
    failed = stored.steps["angles"].candidates[0]
    assert failed.status == ResponseStatus.FAILED and "Authorization: ***" in failed.error
    for fmt in ("md", "json", "yaml"):
        assert LEAKY_KEY not in export.render(stored, fmt)
    assert all(
        LEAKY_KEY not in json.dumps(e.data) for e in engine.store.events(run.pipeline_run_id)
    )


def test_scrub_masks_credential_shapes_and_the_given_secrets():
    text = (
        'Authorization: Bearer abc.DEF-123 | {"authorization": "Basic dXNlcjpwYXNz"} | '
        "bearer tok_12345 | sk-proj-AbCdEfGh12345678 | key AIzaSyA1234567890abcdefghij | "
        "api_key=plain-secret-1 | x-api-key: hdr-secret-2 | "
        "https://host/v1/models?key=url-secret-3&alt=sse | my own s3cr3t-value here"
    )
    clean = providers.scrub(text, secrets=["s3cr3t-value", None, ""])
    for secret in (
        "abc.DEF-123",
        "dXNlcjpwYXNz",
        "tok_12345",
        "AbCdEfGh12345678",
        "SyA1234567890",
        "plain-secret-1",
        "hdr-secret-2",
        "url-secret-3",
        "s3cr3t-value",
    ):
        assert secret not in clean, secret
    assert "sk-***" in clean and "?key=***&alt=sse" in clean and "my own *** here" in clean
    assert providers.scrub("Rate limit reached for requests. Try again in 1s.") == (
        "Rate limit reached for requests. Try again in 1s."
    )
