"""The seed's entities and both state machines, exactly as specified."""

from itertools import product

import pytest

from writeit.models import (
    PIPELINE_TRANSITIONS,
    STEP_TRANSITIONS,
    AIResponse,
    InvalidTransition,
    PipelineConfiguration,
    PipelineRun,
    PipelineStatus,
    StepState,
    StepStatus,
    StylePrimer,
    TokenUsage,
    UserPreferences,
    validate_pipeline_transition,
    validate_step_transition,
)

SEED_PIPELINE = {
    (PipelineStatus.INITIALIZING, PipelineStatus.RUNNING),
    (PipelineStatus.INITIALIZING, PipelineStatus.ERROR),
    (PipelineStatus.RUNNING, PipelineStatus.PAUSED),
    (PipelineStatus.RUNNING, PipelineStatus.COMPLETED),
    (PipelineStatus.RUNNING, PipelineStatus.ERROR),
    (PipelineStatus.PAUSED, PipelineStatus.RUNNING),
    (PipelineStatus.PAUSED, PipelineStatus.ERROR),
    (PipelineStatus.ERROR, PipelineStatus.RUNNING),
}
SEED_STEP = {
    (StepStatus.PENDING, StepStatus.RUNNING),
    (StepStatus.PENDING, StepStatus.SKIPPED),
    (StepStatus.RUNNING, StepStatus.COMPLETED),
    (StepStatus.RUNNING, StepStatus.PENDING),
    (StepStatus.COMPLETED, StepStatus.RUNNING),
    (StepStatus.SKIPPED, StepStatus.RUNNING),
}


def pipeline() -> PipelineConfiguration:
    return PipelineConfiguration(
        name="mini",
        inputs=[{"name": "source"}],
        steps=[
            {"name": "first", "template": "{{ source }}"},
            {"name": "second", "template": "{{ first_output }}"},
        ],
    )


def a_run(status: PipelineStatus) -> PipelineRun:
    return PipelineRun(
        configuration_id="mini", pipeline=pipeline(), current_step="first", status=status
    )


@pytest.mark.parametrize("current,new", list(product(PipelineStatus, PipelineStatus)))
def test_pipeline_state_machine_is_the_seeds(current, new):
    allowed = (current, new) in SEED_PIPELINE
    assert validate_pipeline_transition(current, new) is allowed
    run = a_run(current)
    if allowed:
        run.transition(new)
        assert run.status == new
    else:
        with pytest.raises(InvalidTransition, match=f"from {current.value} to {new.value}"):
            run.transition(new)
        assert run.status == current


@pytest.mark.parametrize("current,new", list(product(StepStatus, StepStatus)))
def test_step_state_machine_is_the_seeds(current, new):
    allowed = (current, new) in SEED_STEP
    assert validate_step_transition(current, new) is allowed
    step = StepState(step_name="draft", status=current)
    if allowed:
        step.transition(new)
        assert step.status == new
    else:
        with pytest.raises(InvalidTransition, match="step 'draft'"):
            step.transition(new)
        assert step.status == current


def test_transition_tables_cover_every_status():
    assert set(PIPELINE_TRANSITIONS) == set(PipelineStatus)
    assert set(STEP_TRANSITIONS) == set(StepStatus)
    assert PIPELINE_TRANSITIONS[PipelineStatus.COMPLETED] == frozenset()


def test_completed_is_terminal_and_says_so():
    run = a_run(PipelineStatus.COMPLETED)
    with pytest.raises(InvalidTransition, match="nothing \\(terminal\\)"):
        run.transition(PipelineStatus.RUNNING)


def test_step_names_come_from_the_pipeline_not_an_enum():
    run = a_run(PipelineStatus.RUNNING)
    assert run.advance_step() == "second"
    run.current_step = "second"
    with pytest.raises(Exception, match="final step"):
        run.advance_step()


def test_select_response_completes_the_step_and_keeps_feedback():
    step = StepState(step_name="first", status=StepStatus.RUNNING)
    step.add_response(AIResponse(model_name="a", processed_content="A text", status="completed"))
    step.add_response(AIResponse(model_name="b", processed_content="B text", status="completed"))
    assert step.select_response(1, "shorter please") == "B text"
    assert step.status == StepStatus.COMPLETED
    assert step.user_selection == 1
    assert step.user_feedback == "shorter please"
    assert step.get_selected_content() == "B text"
    with pytest.raises(Exception, match="out of range"):
        step.select_response(5)


def test_format_for_prompt_follows_the_seed():
    primer = StylePrimer(
        primer_id="p",
        name="Plain",
        content="Write plainly.",
        voice_attributes={"tone": "calm", "structure": "example-first"},
        example_openings=["One.", "Two.", "Three."],
        guidelines={"avoid": ["delve", "leverage"], "prefer": ["verbs"]},
    )
    text = primer.format_for_prompt()
    assert text.startswith("WRITING STYLE GUIDE: Plain\n\nWrite plainly.\n\n")
    assert "Tone: calm\nStructure: example-first\n" in text
    assert "- One.\n- Two.\n" in text and "Three." not in text
    assert "\nAvoid: delve, leverage\nPrefer: verbs\n" in text


def test_entities_round_trip_through_json():
    run = a_run(PipelineStatus.RUNNING)
    run.steps = {"first": StepState(step_name="first"), "second": StepState(step_name="second")}
    run.steps["first"].add_response(
        AIResponse(model_name="m", usage_stats=TokenUsage(input_tokens=1, output_tokens=2))
    )
    again = PipelineRun.model_validate_json(run.model_dump_json())
    assert again == run
    prefs = UserPreferences(keyboard_shortcuts={"merge": "m"})
    assert UserPreferences.model_validate_json(prefs.model_dump_json()) == prefs


def test_preferences_are_validated():
    with pytest.raises(ValueError):
        UserPreferences(max_concurrent_pipelines=0)
    with pytest.raises(ValueError):
        UserPreferences(export_format="docx")
