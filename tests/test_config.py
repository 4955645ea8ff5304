"""Pipeline and style files: built-ins, validation problems with lines, discovery, templates."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from writeit.config import (
    BUILTIN_DIR,
    MAX_FILE_BYTES,
    ConfigError,
    Problem,
    get_pipeline,
    get_style,
    list_pipelines,
    list_styles,
    load_pipeline,
    load_style,
    pipeline_paths,
    render_template,
    step_context,
    style_paths,
    validate_pipeline_file,
    validate_style_file,
    variables_for_step,
)
from writeit.models import WriteItError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

VALID = """\
name: mini
description: A small valid pipeline
inputs:
  - name: topic
    required: true
steps:
  - name: draft
    template: "Write about {{ topic }}."
  - name: polish
    template: |
      Polish this:
      {{ draft_output }}
      {% if feedback %}Feedback: {{ feedback }}{% endif %}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line containing `needle`: where a problem should point."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def only(problems: list[Problem], fragment: str) -> Problem:
    matching = [p for p in problems if fragment in p.message]
    assert len(matching) == 1, f"expected one problem with {fragment!r}, got {problems}"
    return matching[0]


# --- built-ins ------------------------------------------------------------------------


def test_builtin_pipelines_all_validate_and_load():
    paths = pipeline_paths()
    assert {"tech-article", "blog-post", "research-summary"} <= set(paths)
    for name, path in paths.items():
        assert validate_pipeline_file(path) == [], name
        config = load_pipeline(path)
        assert config.name == name
        assert len(config.inputs) >= 1 and len(config.steps) >= 2
        assert config.defaults["models"] == ["markov"]


def test_tech_article_is_the_four_step_pipeline():
    config = get_pipeline("tech-article")
    assert config.step_names == ["angles", "outline", "draft", "polish"]
    source, audience = config.inputs
    assert (source.name, source.required, source.label) == (
        "source_material",
        True,
        "Source material",
    )
    assert source.help
    assert (audience.name, audience.default) == ("target_audience", "technical professionals")
    assert config.step("polish").skippable
    assert "{{ source_material }}" in config.step("angles").template
    assert "{{ angles_output }}" in config.step("outline").template
    assert "{{ outline_output }}" in config.step("draft").template
    assert "{{ draft_output }}" in config.step("polish").template


def test_choice_inputs_of_builtins_have_valid_defaults():
    tone = get_pipeline("blog-post").input("tone")
    length = get_pipeline("research-summary").input("length")
    assert tone is not None and tone.type == "choice" and tone.default in tone.options
    assert length is not None and length.options == ["brief", "standard", "detailed"]


@pytest.mark.parametrize("name", ["tech-article", "blog-post", "research-summary"])
def test_builtin_prompts_render_with_feedback_guidance_and_style(name):
    config = get_pipeline(name)
    inputs = {i.name: f"<{i.name} value>" for i in config.inputs if i.default is None}
    outputs = {s: f"<{s} output>" for s in config.step_names}
    feedback = {s: f"<feedback on {s}>" for s in config.step_names}
    for index, step in enumerate(config.steps):
        context = step_context(
            config, step.name, inputs=inputs, outputs=outputs, feedback=feedback,
            guidance="<guidance>", style="Technical Journalist",
        )  # fmt: skip
        prompt = render_template(step.template, context)
        assert "<guidance>" in prompt
        assert "\n\n\n" not in prompt  # block tags leave no stray blank lines
        if index:
            previous = config.step_names[index - 1]
            assert f"<{previous} output>" in prompt
            assert f"<feedback on {previous}>" in prompt
    first = config.steps[0]
    bare = render_template(
        first.template, step_context(config, first.name, inputs=inputs, outputs={})
    )
    assert "<guidance>" not in bare and "instruction for this attempt" not in bare


def test_builtin_styles_all_validate_and_load():
    paths = style_paths()
    assert {"tech-journalist", "conversational-blog", "executive-brief"} <= set(paths)
    for stem, path in paths.items():
        assert validate_style_file(path) == [], stem
        style = load_style(path)
        assert style.primer_id == stem
        assert len(style.content) > 300
        assert "delve" in style.guidelines["avoid"]
        assert style.guidelines["prefer"]
        prompt = style.format_for_prompt()
        assert prompt.startswith(f"WRITING STYLE GUIDE: {style.name}")
        assert "Avoid: " in prompt and "game-changer" in prompt


def test_listings_mark_builtins():
    pipelines = {entry.name: entry for entry in list_pipelines()}
    assert pipelines["tech-article"].builtin and pipelines["tech-article"].item is not None
    styles = {entry.name: entry for entry in list_styles()}
    assert styles["executive-brief"].item.name == "Executive Brief"
    item, path, problems = pipelines["blog-post"]  # unpacks as a 3-tuple
    assert item.name == "blog-post" and path.stem == "blog-post" and problems == []


# --- problems, each with its line and a hint --------------------------------------------


def test_valid_file_has_no_problems(tmp_path):
    path = write(tmp_path, "mini.yaml", VALID)
    assert validate_pipeline_file(path) == []
    assert load_pipeline(path).step_names == ["draft", "polish"]


def test_yaml_syntax_error_reports_its_line(tmp_path):
    path = write(
        tmp_path,
        "broken.yaml",
        """\
        name: broken
        inputs:
          - name: topic
        steps:
          - name: draft
            template: "Write about {{ topic }}"
           - name: polish
        """,
    )
    [problem] = validate_pipeline_file(path)
    assert problem.message.startswith("YAML syntax error")
    assert problem.line == line_of(path, "- name: polish")
    assert problem.file == str(path)
    assert "indentation" in problem.hint


def test_unquoted_template_starting_with_braces_gets_a_specific_hint(tmp_path):
    path = write(
        tmp_path,
        "braces.yaml",
        """\
        name: braces
        inputs: [{name: topic}]
        steps:
          - name: draft
            template: {{ topic }} needs an article
          - {name: polish, template: "{{ draft_output }}"}
        """,
    )
    [problem] = validate_pipeline_file(path)
    assert problem.line == line_of(path, "template: {{ topic }}")
    assert "quote it or use 'template: |'" in problem.hint


def test_undefined_variable_reports_the_line_where_it_is_used(tmp_path):
    path = write(
        tmp_path,
        "undefined.yaml",
        """\
        name: undefined
        inputs:
          - name: source_material
          - name: target_audience
        steps:
          - name: outline
            template: |
              Outline this material:
              {{ source_material }}
              for {{ audience }}.
          - name: draft
            template: "{{ outline_output }}"
        """,
    )
    problem = only(validate_pipeline_file(path), "undefined variable 'audience'")
    assert problem.line == line_of(path, "for {{ audience }}")
    assert "step 'outline'" in problem.message
    assert "did you mean 'target_audience'?" in problem.hint
    assert "source_material" in problem.hint and "feedback" in problem.hint


def test_using_a_later_steps_output_has_its_own_message(tmp_path):
    path = write(
        tmp_path,
        "order.yaml",
        """\
        name: order
        inputs: [{name: topic}]
        steps:
          - name: outline
            template: "Outline {{ topic }} to match {{ draft_output }}"
          - name: draft
            template: "Draft from {{ outline_output }}"
        """,
    )
    [problem] = validate_pipeline_file(path)
    assert problem.message == "step 'outline' uses draft_output but draft runs after it"
    assert problem.line == line_of(path, "to match {{ draft_output }}")
    assert "earlier steps" in problem.hint


def test_a_step_cannot_use_its_own_output(tmp_path):
    path = write(
        tmp_path, "self.yaml", VALID.replace("Write about {{ topic }}.", "{{ draft_output }}")
    )
    [problem] = validate_pipeline_file(path)
    assert problem.message == "step 'draft' uses draft_output, its own output"
    assert problem.line == line_of(path, '{{ draft_output }}"')


def test_extras_and_earlier_feedback_are_defined(tmp_path):
    path = write(
        tmp_path,
        "extras.yaml",
        """\
        name: extras
        inputs: [{name: topic}]
        steps:
          - {name: a, template: "{{ topic }} {{ feedback }} {{ guidance }} {{ style }}"}
          - {name: b, template: "{{ a_output }} {{ a_feedback }} {{ feedback }}"}
          - {name: c, template: "{{ c_feedback }}"}
        """,
    )
    [problem] = validate_pipeline_file(path)
    assert problem.message == "step 'c' uses c_feedback, its own feedback"
    assert problem.line == line_of(path, "name: c")


def test_one_step_only(tmp_path):
    path = write(
        tmp_path,
        "one.yaml",
        """\
        name: one
        inputs: [{name: topic}]
        steps:
          - {name: draft, template: "{{ topic }}"}
        """,
    )
    [problem] = validate_pipeline_file(path)
    assert problem.message == "pipeline has only one step; it needs at least two steps"
    assert problem.line == line_of(path, "steps:")
    assert "add a step" in problem.hint


def test_no_inputs_and_missing_inputs(tmp_path):
    empty = write(
        tmp_path,
        "empty.yaml",
        VALID.replace("  - name: topic\n    required: true\n", "").replace("inputs:", "inputs: []"),
    )
    problem = only(validate_pipeline_file(empty), "no inputs")
    assert problem.line == line_of(empty, "inputs: []")
    assert "add an input" in problem.hint
    # the template's {{ topic }} is reported too, at its own line
    assert only(validate_pipeline_file(empty), "'topic'").line == line_of(empty, "{{ topic }}")

    missing = write(
        tmp_path,
        "missing.yaml",
        "name: x\nsteps:\n  - {name: a, template: hi}\n  - {name: b, template: ho}\n",
    )
    [problem] = validate_pipeline_file(missing)
    assert problem.message == "pipeline has no inputs; it needs at least one input"
    assert problem.line == 1


def test_empty_name(tmp_path):
    path = write(tmp_path, "noname.yaml", VALID.replace("name: mini", 'name: "  "'))
    [problem] = validate_pipeline_file(path)
    assert problem.message == "pipeline name is missing or empty"
    assert problem.line == 1 and "name:" in problem.hint


def test_duplicate_step_and_input_names(tmp_path):
    path = write(
        tmp_path,
        "dupes.yaml",
        """\
        name: dupes
        inputs:
          - name: topic
          - name: topic
        steps:
          - name: draft
            template: "{{ topic }}"
          - name: draft
            template: "{{ topic }} again"
        """,
    )
    problems = validate_pipeline_file(path)
    step = only(problems, "step 'draft' is defined twice")
    assert step.line == 8 and "(first on line 6)" in step.message
    assert only(problems, "input 'topic' is defined twice").line == 4


def test_duplicate_yaml_keys_are_not_silently_dropped(tmp_path):
    path = write(tmp_path, "keys.yaml", VALID + "name: other\n")
    [problem] = validate_pipeline_file(path)
    assert problem.message == "key 'name' appears twice (first on line 1)"
    assert problem.line == line_of(path, "name: other")


def test_unknown_keys_and_wrong_types_point_at_the_key(tmp_path):
    path = write(
        tmp_path,
        "types.yaml",
        """\
        name: types
        descripton: typo at the top
        inputs:
          - name: topic
            requird: true
            type: essay
        steps:
          - name: draft
            template: "{{ topic }}"
            responses: two
          - name: polish
            tempalte: "{{ draft_output }}"
            models: markov
        """,
    )
    problems = validate_pipeline_file(path)
    top = only(problems, "unknown key 'descripton'")
    assert top.line == 2 and "did you mean 'description'?" in top.hint
    key = only(problems, "unknown key 'requird'")
    assert key.message == "input 'topic' has an unknown key 'requird'"
    assert key.line == 5 and "did you mean 'required'?" in key.hint
    kind = only(problems, "type:")
    assert kind.line == 6 and "'text' or 'choice'" in kind.message
    responses = only(problems, "responses:")
    assert (
        responses.line == 10
        and "step 'draft'" in responses.message
        and "'two'" in responses.message
    )
    assert only(problems, "unknown key 'tempalte'").line == 12
    missing = only(problems, "is missing 'template'")
    assert missing.message == "step 'polish' is missing 'template'" and missing.line == 11
    models = only(problems, "models:")
    assert models.line == 13 and "list" in models.hint


def test_choice_input_needs_options_and_a_default_among_them(tmp_path):
    path = write(
        tmp_path,
        "choice.yaml",
        """\
        name: choice
        inputs:
          - {name: tone, type: choice}
          - name: length
            type: choice
            options: [short, long]
            default: medium
        steps:
          - {name: a, template: "{{ tone }} {{ length }}"}
          - {name: b, template: "{{ a_output }}"}
        """,
    )
    problems = validate_pipeline_file(path)
    assert only(problems, "has no options").line == 3
    default = only(problems, "not one of the options")
    assert default.line == line_of(path, "default: medium") and "short, long" in default.hint


def test_input_named_like_a_provided_variable(tmp_path):
    path = write(
        tmp_path,
        "clash.yaml",
        VALID.replace("- name: topic", "- name: feedback").replace("{{ topic }}", "{{ feedback }}"),
    )
    problem = only(validate_pipeline_file(path), "clashes")
    assert problem.message == "input 'feedback' clashes with a variable WriteIt provides"
    assert problem.line == line_of(path, "- name: feedback")


def test_jinja_syntax_error_line_includes_the_template_offset(tmp_path):
    path = write(
        tmp_path,
        "jinja.yaml",
        """\
        name: jinja
        inputs: [{name: topic}]
        steps:
          - name: draft
            template: |
              Line one about {{ topic }}.
              Line two.
              Broken {{ topic }
          - name: polish
            template: "{{ draft_output }"
        """,
    )
    problems = validate_pipeline_file(path)
    block = only(problems, "step 'draft': template syntax error")
    assert block.line == line_of(path, "Broken {{ topic }")
    assert "closed" in block.hint
    inline = only(problems, "step 'polish': template syntax error")
    assert inline.line == line_of(path, '"{{ draft_output }"')


def test_alias_bomb_is_refused(tmp_path):
    path = write(
        tmp_path,
        "bomb.yaml",
        """\
        name: bomb
        a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]
        """,
    )
    [problem] = validate_pipeline_file(path)
    assert problem.message == "alias *a is not allowed"
    assert problem.line == 3
    assert "aliases are refused" in problem.hint


def test_oversized_file_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, "huge.yaml", VALID + "# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    [problem] = validate_pipeline_file(path)
    assert "over the 256 KiB limit" in problem.message
    assert problem.line is None and "input" in problem.hint
    assert str(problem).startswith(f"{path}: file is ")


def test_empty_and_non_mapping_files(tmp_path):
    [empty] = validate_pipeline_file(write(tmp_path, "empty.yaml", "# nothing\n"))
    assert empty.message == "file is empty"
    [listed] = validate_pipeline_file(write(tmp_path, "list.yaml", "- name: x\n- name: y\n"))
    assert listed.message == "the top level must be a mapping of keys, found a list"
    [missing] = validate_pipeline_file(tmp_path / "nowhere.yaml")
    assert missing.message == "file not found"


def test_several_problems_are_all_reported_in_line_order(tmp_path):
    path = write(
        tmp_path,
        "many.yaml",
        """\
        name: ""
        colour: blue
        inputs:
          - name: topic
        steps:
          - name: draft
            template: "{{ topci }} and {{ polish_output }}"
            responses: 0
        """,
    )
    problems = validate_pipeline_file(path)
    messages = [p.message for p in problems]
    assert messages == [
        "pipeline name is missing or empty",
        "the pipeline has an unknown key 'colour'",
        "pipeline has only one step; it needs at least two steps",
        "step 'draft' uses undefined variable 'polish_output'",  # no such step
        "step 'draft' uses undefined variable 'topci'",
        "step 'draft': responses: Input should be greater than or equal to 1 (got 0)",
    ]
    assert [p.line for p in problems] == [1, 2, 5, 7, 7, 8]
    assert all(p.hint for p in problems)
    assert "did you mean 'topic'?" in problems[4].hint

    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    text = str(caught.value)
    assert text.splitlines()[0] == f"{path} has 6 problems:"
    assert f"{path}:7: step 'draft' uses undefined variable 'topci' (hint: " in text
    assert caught.value.problems == problems


def test_problem_str_format():
    assert str(Problem("p.yaml", 3, "bad", "fix it")) == "p.yaml:3: bad (hint: fix it)"
    assert str(Problem("p.yaml", None, "bad")) == "p.yaml: bad"


def test_changed_file_is_read_again(tmp_path):
    path = write(tmp_path, "mini.yaml", VALID)
    assert load_pipeline(path).description == "A small valid pipeline"
    path.write_text(VALID.replace("A small valid pipeline", "Edited, and longer than before"))
    assert load_pipeline(path).description == "Edited, and longer than before"
    path.write_text(VALID.replace("name: mini", "name: ''"))
    assert [p.message for p in validate_pipeline_file(path)] == [
        "pipeline name is missing or empty"
    ]


def test_loaded_objects_are_copies(tmp_path):
    path = write(tmp_path, "mini.yaml", VALID)
    load_pipeline(path).defaults["temperature"] = 9
    load_pipeline(path).inputs[0].label = "changed"
    assert load_pipeline(path).defaults == {} and load_pipeline(path).inputs[0].label == ""


# --- the bundled broken examples ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("syntax-error.yaml", "YAML syntax error"),
        ("undefined-variable.yaml", "uses undefined variable 'audience'"),
        ("one-step.yaml", "only one step"),
        ("no-inputs.yaml", "has no inputs"),
    ],
)
def test_broken_examples_fail_as_documented(name, expected):
    problems = validate_pipeline_file(EXAMPLES / "broken" / name)
    assert any(expected in p.message for p in problems), problems
    assert all(p.line and p.hint for p in problems)


def test_sample_source_is_there_for_make_run():
    words = (EXAMPLES / "sample-source.md").read_text().split()
    assert 400 <= len(words) <= 700


# --- styles ---------------------------------------------------------------------------


def test_style_primer_id_defaults_to_the_file_stem(tmp_path):
    path = write(tmp_path, "plain-spoken.yaml", "name: Plain Spoken\ncontent: Say it simply.\n")
    style = load_style(path)
    assert (style.primer_id, style.name) == ("plain-spoken", "Plain Spoken")
    assert "Say it simply." in style.format_for_prompt()


def test_style_problems_are_located(tmp_path):
    path = write(
        tmp_path,
        "bad-style.yaml",
        """\
        name: Bad
        voice_attributes:
          tone: 3
        guidelines:
          avoid: [delve]
          never: [synergy]
        colour: red
        """,
    )
    problems = validate_style_file(path)
    assert only(problems, "style has no content").line == 1
    assert only(problems, "voice_attributes.tone").line == 3
    assert "quote" in only(problems, "voice_attributes.tone").hint
    assert only(problems, "unknown guideline 'never'").line == 6
    assert only(problems, "unknown key 'colour'").line == 7
    with pytest.raises(ConfigError):
        load_style(path)


# --- discovery and overrides ----------------------------------------------------------


def test_override_order_builtin_then_home_then_workspace(tmp_path):
    home, workspace = tmp_path / "home" / "pipelines", tmp_path / "ws" / "pipelines"
    override = VALID.replace("name: mini", "name: tech-article")
    write(home, "tech-article.yaml", override.replace("A small valid pipeline", "from home"))
    write(home, "home-only.yaml", VALID)
    assert get_pipeline("tech-article").step_names == ["angles", "outline", "draft", "polish"]
    assert get_pipeline("tech-article", [home]).description == "from home"

    write(
        workspace, "tech-article.yml", override.replace("A small valid pipeline", "from workspace")
    )
    assert get_pipeline("tech-article", [home, workspace]).description == "from workspace"
    paths = pipeline_paths([home, workspace])
    assert paths["tech-article"] == workspace / "tech-article.yml"
    assert paths["home-only"] == home / "home-only.yaml"
    assert paths["blog-post"].is_relative_to(BUILTIN_DIR)
    assert not {e.name: e for e in list_pipelines([home, workspace])}["tech-article"].builtin


def test_style_override_and_missing_dirs_are_ignored(tmp_path):
    styles = tmp_path / "styles"
    write(styles, "tech-journalist.yaml", "name: House Style\ncontent: Ours.\n")
    assert get_style("tech-journalist", [tmp_path / "absent", styles]).name == "House Style"
    assert get_style("tech-journalist").name == "Technical Journalist"


def test_unknown_pipeline_lists_the_known_ones(tmp_path):
    with pytest.raises(WriteItError) as caught:
        get_pipeline("tech-artcle")
    assert str(caught.value).startswith("unknown pipeline 'tech-artcle'")
    assert "did you mean 'tech-article'?" in caught.value.hint
    assert "blog-post, research-summary, tech-article" in caught.value.hint
    with pytest.raises(WriteItError) as caught:
        get_style("nope")
    assert "conversational-blog, executive-brief, tech-journalist" in caught.value.hint


def test_a_direct_path_works_as_a_name(tmp_path):
    path = write(tmp_path, "mine.yaml", VALID)
    assert get_pipeline(str(path)).name == "mini"
    with pytest.raises(WriteItError, match="no pipeline file at"):
        get_pipeline(str(tmp_path / "absent.yaml"))


def test_listing_shows_broken_files_without_raising(tmp_path):
    write(tmp_path, "broken.yaml", "name: broken\ninputs: [\n")
    write(tmp_path, "mini.yaml", VALID)
    entries = {e.name: e for e in list_pipelines([tmp_path])}
    assert entries["broken"].item is None
    assert entries["broken"].problems[0].message.startswith("YAML syntax error")
    assert entries["mini"].item is not None and entries["mini"].problems == []
    assert "tech-article" in entries
    with pytest.raises(ConfigError):
        get_pipeline("broken", [tmp_path])


# --- templates ------------------------------------------------------------------------


def test_user_text_that_looks_like_a_template_is_passed_verbatim():
    source = "Jinja code: {{ 7*7 }} and {% for x in y %}{{ x }}{% endfor %} and {# note #}"
    prompt = render_template("Source:\n{{ source_material }}\n", {"source_material": source})
    assert prompt == f"Source:\n{source}\n"
    assert "49" not in prompt


def test_render_keeps_trailing_newline_and_does_not_escape():
    assert render_template("<b>{{ x }}</b>\n", {"x": "a & b"}) == "<b>a & b</b>\n"


def test_undefined_variable_at_render_time_is_a_clear_error():
    with pytest.raises(WriteItError) as caught:
        render_template("Hello {{ audience }}", {"topic": "x"})
    assert "'audience' is undefined" in str(caught.value)
    assert caught.value.hint == "variables given: topic"


def test_sandbox_blocks_unsafe_attribute_access():
    with pytest.raises(WriteItError, match="could not be rendered"):
        render_template("{{ x.__class__.__mro__[1].__subclasses__() }}", {"x": "a"})


def test_template_syntax_error_at_render_time():
    with pytest.raises(WriteItError, match="template syntax error on line 2"):
        render_template("fine\n{% if %}", {})


def test_step_context_supplies_every_variable_a_step_may_use():
    config = get_pipeline("tech-article")
    assert variables_for_step(config, "outline") == {
        "source_material", "target_audience", "feedback", "guidance", "style",
        "angles_output", "angles_feedback",
    }  # fmt: skip
    context = step_context(
        config,
        "draft",
        inputs={"source_material": "notes"},
        outputs={"angles": "three angles", "outline": "the outline"},
        feedback={"angles": "use angle 2", "outline": "shorter intro"},
    )
    assert context["target_audience"] == "technical professionals"  # the input's default
    assert context["feedback"] == "shorter intro"  # from the step just before
    assert context["angles_feedback"] == "use angle 2"
    assert context["outline_output"] == "the outline"
    assert context["guidance"] == "" and context["style"] == ""
    assert "draft_output" not in context
    assert set(context) == variables_for_step(config, "draft")
    first = step_context(config, "angles", inputs={"source_material": "n"}, outputs={})
    assert first["feedback"] == ""


def test_a_preference_set_to_its_default_value_is_kept_as_chosen(isolated_env):
    from writeit.workspaces import load_preferences, set_preference

    set_preference("export_format", "yaml")  # the default, chosen on purpose
    set_preference("theme", "nord")
    preferences = load_preferences()
    assert {"export_format", "theme"} <= preferences.model_fields_set
    assert "max_retries" not in preferences.model_fields_set  # never set: follows defaults


def test_a_shortcut_on_a_key_terminals_alias_is_refused_with_the_reason():
    from pydantic import ValidationError

    from writeit.models import UserPreferences

    for key, sent_as in (("ctrl+m", "Enter"), ("ctrl+i", "Tab"), ("ctrl+h", "Backspace")):
        with pytest.raises(ValidationError, match=re.escape(f"terminals send {key} as {sent_as}")):
            UserPreferences(keyboard_shortcuts={"merge": key})
    assert UserPreferences(keyboard_shortcuts={"merge": "x"}).keyboard_shortcuts == {"merge": "x"}
