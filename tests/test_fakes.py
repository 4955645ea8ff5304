"""The test fakes work through the real llm (and openai) code path."""

from __future__ import annotations

import asyncio
import contextlib
import os

import llm
import openai
import pytest
import scripted_model
from openai_server import LLM_MODELS, OpenAIServer, limit_client, reply_for
from scripted_model import Gate, default_reply, script


def chunks_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------


def test_environment_is_isolated(isolated_env):
    assert llm.user_dir() == isolated_env.llm_user_path
    assert os.environ["WRITEIT_HOME"] == str(isolated_env.writeit_home)
    assert not [name for name in os.environ if name.endswith("_API_KEY")]
    assert "OPENAI_BASE_URL" not in os.environ
    assert llm.plugins.LLM_LOAD_PLUGINS == "llm-markov"
    llm.load_plugins()  # get_plugins() does not load them itself
    plugin_names = {plugin["name"] for plugin in llm.get_plugins()}
    assert plugin_names == {"llm-markov", "scripted_model"}


def test_markov_is_available_offline_and_sync_only():
    model = llm.get_model("markov")
    prompt = "the cat sat on the mat and the dog sat on the log"
    text = model.prompt(prompt, length=8, delay=0).text()
    assert len(text.split()) == 8
    assert set(text.split()) <= set(prompt.split())
    with pytest.raises(llm.UnknownModelError, match="sync model exists"):
        llm.get_async_model("markov")


# --------------------------------------------------------------------------
# Scripted model
# --------------------------------------------------------------------------


async def test_async_scripted_model_streams_script_in_chunks_and_records_call():
    reply = "Forty-nine is not what we asked for; the braces stay."
    script("scripted-a", replies=[reply], chunk_size=5)
    model = llm.get_async_model("scripted-a")

    response = model.prompt(
        "Source: {{ 7*7 }} stays verbatim",
        system="Write plainly.",
        temperature=0.7,
        max_tokens=1500,
    )
    received = [chunk async for chunk in response]

    assert received == chunks_of(reply, 5)
    assert await response.text() == reply
    usage = await response.usage()
    assert (usage.input, usage.output) == (6, len(reply.split()))
    assert scripted_model.calls == [
        {
            "model_id": "scripted-a",
            "prompt": "Source: {{ 7*7 }} stays verbatim",
            "system": "Write plainly.",
            "options": {"temperature": 0.7, "max_tokens": 1500},
            "stream": True,
            "mode": "async",
            "reply": reply,
        }
    ]


async def test_default_reply_is_deterministic_and_differs_by_model_and_prompt():
    a = await llm.get_async_model("scripted-a").prompt("Write about LMDB").text()
    b = await llm.get_async_model("scripted-b").prompt("Write about LMDB").text()
    a_again = await llm.get_async_model("scripted-a").prompt("Write about LMDB").text()
    a_other = await llm.get_async_model("scripted-a").prompt("Write about Textual").text()

    assert a.startswith("[scripted] scripted-a answered: Write about LMDB...\n\n")
    assert b.startswith("[scripted] scripted-b answered: Write about LMDB...\n\n")
    assert a == a_again == default_reply("scripted-a", "Write about LMDB")
    assert a != a_other
    assert a.count("\n\n") >= 4 and len(a.split()) > 80  # looks like an article


async def test_replies_are_consumed_in_order_then_default_applies():
    script("scripted", replies=["one", "two"])
    model = llm.get_async_model("scripted")
    texts = [await model.prompt(f"call {n}").text() for n in range(3)]
    assert texts == ["one", "two", default_reply("scripted", "call 2")]


async def test_wildcard_script_applies_to_models_without_their_own():
    script("*", replies=["shared"])
    script("scripted-b", replies=["own"])
    assert await llm.get_async_model("scripted-a").prompt("x").text() == "shared"
    assert await llm.get_async_model("scripted-b").prompt("x").text() == "own"


async def test_scripted_failure_raises_model_error_before_any_chunk():
    script("scripted-b", fail="quota exceeded for scripted-b")
    response = llm.get_async_model("scripted-b").prompt("anything")
    received = []
    with pytest.raises(llm.ModelError, match="quota exceeded for scripted-b"):
        async for chunk in response:
            received.append(chunk)
    assert received == []
    assert scripted_model.calls_for("scripted-b")[0]["reply"] is None


async def test_fail_after_chunks_is_a_mid_stream_drop():
    script("scripted-c", replies=["abcdefghij"], chunk_size=3, fail_after_chunks=2)
    response = llm.get_async_model("scripted-c").prompt("anything")
    received = []
    with pytest.raises(llm.ModelError, match="dropped after 2 chunks"):
        async for chunk in response:
            received.append(chunk)
    assert received == ["abc", "def"]


async def test_exception_in_replies_fails_that_call_only():
    script("scripted", replies=[llm.ModelError("transient"), "recovered"])
    model = llm.get_async_model("scripted")
    with pytest.raises(llm.ModelError, match="transient"):
        await model.prompt("try 1").text()
    assert await model.prompt("try 2").text() == "recovered"
    assert [call["prompt"] for call in scripted_model.calls] == ["try 1", "try 2"]


async def test_gate_holds_an_async_stream_until_released():
    reply = "0123456789abcdef"
    gate = Gate(after_chunks=2)
    script("scripted-a", replies=[reply], chunk_size=4, gate=gate)
    response = llm.get_async_model("scripted-a").prompt("hold me")
    received: list[str] = []

    async def consume() -> str:
        async for chunk in response:
            received.append(chunk)
        return "".join(received)

    task = asyncio.create_task(consume())
    await gate.wait_reached()
    assert received == ["0123", "4567"]
    assert not task.done()
    gate.release()
    assert await task == reply


async def test_cancelling_a_gated_stream_keeps_only_the_partial_text():
    gate = Gate(after_chunks=1)
    script("scripted-b", replies=["partial|rest"], chunk_size=8, gate=gate)
    response = llm.get_async_model("scripted-b").prompt("crash me")
    received: list[str] = []

    async def consume() -> None:
        async for chunk in response:
            received.append(chunk)

    task = asyncio.create_task(consume())
    await gate.wait_reached()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received == ["partial|"]


async def test_two_models_stream_concurrently_and_interleave():
    script("scripted-a", replies=["a" * 12], chunk_size=2)
    script("scripted-b", replies=["b" * 12], chunk_size=2)
    order: list[str] = []

    async def run(model_id: str) -> str:
        response = llm.get_async_model(model_id).prompt("same prompt")
        async for chunk in response:
            order.append(chunk[0])
        return await response.text()

    texts = await asyncio.gather(run("scripted-a"), run("scripted-b"))
    assert texts == ["a" * 12, "b" * 12]
    assert "ab" in "".join(order) and "ba" in "".join(order)


def test_sync_only_model_streams_and_has_no_async_model():
    script("scripted-sync", replies=["sync text here"], chunk_size=4)
    model = llm.get_model("scripted-sync")
    response = model.prompt("hello", system="sys")
    assert list(response) == ["sync", " tex", "t he", "re"]
    assert response.usage().output == 3
    assert scripted_model.calls[0]["mode"] == "sync"
    assert scripted_model.calls[0]["system"] == "sys"
    with pytest.raises(llm.UnknownModelError, match="sync model exists"):
        llm.get_async_model("scripted-sync")


async def test_sync_model_in_worker_thread_with_gate():
    gate = Gate(after_chunks=1)
    script("scripted-sync", replies=["first second"], chunk_size=6, gate=gate)
    model = llm.get_model("scripted-sync")
    received: list[str] = []

    def consume() -> str:
        for chunk in model.prompt("thread"):
            received.append(chunk)
        return "".join(received)

    task = asyncio.create_task(asyncio.to_thread(consume))
    await gate.wait_reached()
    assert received == ["first "]
    gate.release()
    assert await task == "first second"


def test_dual_models_are_also_sync_models():
    text = llm.get_model("scripted-c").prompt("sync path", stream=False).text()
    assert text == default_reply("scripted-c", "sync path")
    assert scripted_model.calls[0]["stream"] is False


def test_options_are_validated_like_a_real_plugin():
    model = llm.get_model("scripted")
    with pytest.raises(ValueError, match="temperature"):
        model.prompt("x", temperature=5)
    with pytest.raises(ValueError, match="top_k"):
        model.prompt("x", top_k=3)


# --------------------------------------------------------------------------
# Loopback OpenAI-compatible server through llm's OpenAI plugin
# --------------------------------------------------------------------------


async def test_openai_ok_streams_with_usage(openai_server: OpenAIServer):
    model = llm.get_async_model("oai-ok")
    response = model.prompt("Explain event sourcing to editors please", system="Be brief.")
    received = [chunk async for chunk in response]

    expected = reply_for(
        "ok", [{"role": "user", "content": "Explain event sourcing to editors please"}]
    )
    assert "".join(received) == expected
    assert "you said \u201cExplain event sourcing to editors please\u201d" in expected
    assert len(received) > 5
    usage = await response.usage()
    assert (usage.input, usage.output) == (8, len(expected.split()))

    [request] = openai_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "ok"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Explain event sourcing to editors please"},
    ]
    assert request.authorization == "Bearer DUMMY_KEY"


async def test_openai_non_streaming_and_sync_paths(openai_server: OpenAIServer):
    async_text = await llm.get_async_model("oai-ok").prompt("Hello there", stream=False).text()
    sync_response = llm.get_model("oai-ok").prompt("Hello there")
    sync_text = "".join(sync_response)
    assert async_text == sync_text == reply_for("ok", [{"role": "user", "content": "Hello there"}])
    assert sync_response.usage().input == 2
    assert [r.body["stream"] for r in openai_server.requests] == [False, True]


async def test_openai_slow_model_still_streams_everything(openai_server: OpenAIServer):
    text = await llm.get_async_model("oai-slow").prompt("Take your time").text()
    assert text.startswith("Reply from slow: you said \u201cTake your time\u201d.")


async def test_openai_500_is_retried_twice_by_default(openai_server: OpenAIServer):
    with pytest.raises(openai.InternalServerError, match="Error code: 500"):
        await llm.get_async_model("oai-500").prompt("hi").text()
    assert openai_server.count("oai-500") == 3  # 1 + openai's default max_retries=2


async def test_openai_500_with_retries_off(openai_server: OpenAIServer):
    model = limit_client(llm.get_async_model("oai-500"), timeout=5, max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        await model.prompt("hi").text()
    assert caught.value.status_code == 500
    assert openai_server.counts["http500"] == 1


async def test_openai_429_honours_retry_after_then_raises(openai_server: OpenAIServer):
    openai_server.retry_after = "1"
    openai_server.retry_after_ms = "10"  # openai prefers retry-after-ms: keeps this test fast
    with pytest.raises(openai.RateLimitError) as caught:
        await llm.get_async_model("oai-429").prompt("hi").text()
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    assert openai_server.count("oai-429") == 3


async def test_openai_401_is_not_retried(openai_server: OpenAIServer):
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key provided") as caught:
        await llm.get_async_model("oai-401").prompt("hi").text()
    assert caught.value.code == "invalid_api_key"
    assert openai_server.count("oai-401") == 1


async def test_openai_flaky_succeeds_after_one_retry(openai_server: OpenAIServer):
    text = await llm.get_async_model("oai-flaky").prompt("second time lucky").text()
    assert "you said \u201csecond time lucky\u201d" in text
    assert openai_server.count("oai-flaky") == 2


async def test_openai_flaky_without_retries_fails_then_next_call_succeeds(
    openai_server: OpenAIServer,
):
    model = limit_client(llm.get_async_model("oai-flaky"), timeout=5, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        await model.prompt("first").text()
    assert "you said \u201csecond\u201d" in await model.prompt("second").text()


async def test_openai_drop_raises_mid_stream(openai_server: OpenAIServer):
    response = llm.get_async_model("oai-drop").prompt("Tell me a long story")
    received = []
    with pytest.raises(openai.APIConnectionError) as caught:
        async for chunk in response:
            received.append(chunk)
    assert "incomplete chunked read" in str(caught.value.__cause__)
    assert received == ["Reply from drop: ", "you said \u201cTell "]  # 2 chunks of 3 words
    assert openai_server.count("oai-drop") == 1  # a broken stream is never retried


async def test_openai_timeout_with_short_client_timeout(openai_server: OpenAIServer):
    model = limit_client(llm.get_async_model("oai-timeout"), timeout=0.3, max_retries=0)
    with pytest.raises(openai.APITimeoutError):
        await model.prompt("anyone there?").text()
    assert openai_server.count("oai-timeout") == 1


async def test_openai_timeout_is_retried_when_retries_allowed(openai_server: OpenAIServer):
    model = limit_client(llm.get_async_model("oai-timeout"), timeout=0.1, max_retries=1)
    with pytest.raises(openai.APITimeoutError):
        await model.prompt("anyone there?").text()
    assert openai_server.count("oai-timeout") == 2


async def test_openai_stall_times_out_mid_stream(openai_server: OpenAIServer):
    model = limit_client(llm.get_async_model("oai-stall"), timeout=0.3, max_retries=0)
    response = model.prompt("start then stop")
    received = []
    with pytest.raises(openai.APITimeoutError):
        async for chunk in response:
            received.append(chunk)
    assert received == ["Reply from stall: ", "you said \u201cstart "]


def test_llm_rereads_extra_models_yaml_on_every_lookup(openai_server: OpenAIServer):
    assert set(LLM_MODELS) <= {m.model_id for m in llm.get_async_models()}
    with pytest.raises(llm.UnknownModelError):
        llm.get_async_model("oai-late")
    openai_server.add_llm_model("oai-late", "ok-late")
    late = llm.get_async_model("oai-late")  # no cache: the new YAML entry is seen
    assert late.model_name == "ok-late"
    assert str(llm.get_model("oai-late").api_base) == openai_server.url


def test_api_key_name_falls_back_to_openai_api_key(openai_server, monkeypatch):
    """The gotcha the product must guard against: the env key goes to any api_base."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sentinel-not-real")
    openai_server.add_llm_model("oai-keyed", "ok", api_key_name="openai")
    llm.get_model("oai-keyed").prompt("hi").text()
    assert openai_server.authorizations == ["Bearer sk-test-sentinel-not-real"]


async def test_no_real_key_reaches_the_server(openai_server: OpenAIServer):
    for model_id in ("oai-ok", "oai-401"):
        model = limit_client(llm.get_async_model(model_id), timeout=5, max_retries=0)
        with contextlib.suppress(openai.AuthenticationError):
            await model.prompt("hi").text()
    assert openai_server.authorizations == ["Bearer DUMMY_KEY", "Bearer DUMMY_KEY"]


def test_models_endpoint_lists_behaviours(openai_server: OpenAIServer):
    client = openai.OpenAI(base_url=openai_server.url, api_key="DUMMY_KEY")
    names = {model.id for model in client.models.list()}
    assert {"ok", "http500", "timeout", "drop"} <= names
