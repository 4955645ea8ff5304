"""Pipeline and style files: find them, validate them, and render step prompts.

A pipeline or style is a small YAML file. Validation reports *every* problem in a
file at once, each with its file, line and a hint, so a writer fixes a file in one
pass instead of meeting errors one at a time (and never sees a traceback).

Templates are Jinja2 in an immutable sandbox with undefined variables as errors.
User inputs and model outputs only ever travel as variable *values*, so text such
as ``{{ 7*7 }}`` in source material reaches the model verbatim.

Discovery override order: built-in < home < workspace (later folders win).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.sandbox
import yaml
from pydantic import BaseModel, ValidationError

from writeit.models import InputSpec, PipelineConfiguration, StepSpec, StylePrimer, WriteItError

BUILTIN_DIR = Path(__file__).parent / "builtins"
MAX_FILE_BYTES = 256 * 1024
#: Variables every step template may use besides inputs and earlier steps' variables.
TEMPLATE_EXTRAS = ("feedback", "guidance", "style")
#: Per earlier step `s`, templates may use `s_output` and `s_feedback`.
STEP_SUFFIXES = ("output", "feedback")

T = TypeVar("T")
Loc = tuple[str | int, ...]


# --- problems -------------------------------------------------------------------------


@dataclass
class Problem:
    """One thing wrong with a file, located precisely enough to fix without guessing."""

    file: str
    line: int | None
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


class ConfigError(WriteItError):
    """A file that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        file = problems[0].file if problems else "configuration"
        plural = "s" if len(problems) != 1 else ""
        super().__init__(f"{file} has {len(problems)} problem{plural}")

    def __str__(self) -> str:
        return "\n".join([f"{self.args[0]}:", *(f"  {p}" for p in self.problems)])


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """A "did you mean" prefix: a name containing this one first, else the closest spelling."""
    known = sorted(known)
    close = [k for k in known if len(name) > 2 and (name in k or k in name)]
    close = close or difflib.get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


# --- YAML with line numbers -----------------------------------------------------------


class _AliasRefused(yaml.MarkedYAMLError):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases: a few lines of `*ref` can expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(
                None, None, f"alias *{event.anchor} is not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


@dataclass
class _Doc:
    """Parsed YAML plus where each key/item sits, so any error path maps back to a line."""

    file: str
    data: dict[str, Any]
    lines: dict[Loc, int] = field(default_factory=lambda: {(): 1})  # 1-based key/item lines
    nodes: dict[Loc, yaml.Node] = field(default_factory=dict)  # value nodes, for templates
    problems: list[Problem] = field(default_factory=list)

    def line(self, loc: Sequence[str | int]) -> int:
        """Line of the deepest part of `loc` the file actually has."""
        loc = tuple(loc)
        return next(
            self.lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in self.lines
        )

    def add(self, where: Loc | int, message: str, hint: str = "") -> None:
        line = where if isinstance(where, int) else self.line(where)
        self.problems.append(Problem(self.file, line, message, hint))


def _read(path: Path) -> tuple[str | None, list[Problem]]:
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            message = f"file is {size // 1024} KiB, over the {MAX_FILE_BYTES // 1024} KiB limit"
            return None, [Problem(file, None, message, "pass long text as an input instead")]
        return path.read_text(encoding="utf-8"), []
    except FileNotFoundError:
        return None, [Problem(file, None, "file not found", "check the path")]
    except UnicodeDecodeError as error:
        return None, [Problem(file, None, f"not UTF-8 text ({error.reason})", "save as UTF-8")]
    except OSError as error:
        return None, [Problem(file, None, f"cannot read file: {error.strerror}")]


def _parse_yaml(text: str, file: str) -> tuple[_Doc | None, list[Problem]]:
    """Compose (for lines) and construct (for data) a mapping document; never raises."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _AliasRefused as error:
        hint = "write the value out in full; anchors and aliases are refused for safety"
        return None, [Problem(file, error.problem_mark.line + 1, str(error.problem), hint)]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        message = f"YAML syntax error: {error.problem or error.context}"
        return None, [Problem(file, line, message, _yaml_hint(text, line))]
    except (yaml.YAMLError, RecursionError) as error:
        return None, [Problem(file, None, f"cannot parse YAML: {error}", "simplify the file")]
    finally:
        loader.dispose()
    if node is None:
        return None, [Problem(file, 1, "file is empty", "start with 'name: ...'")]
    if not isinstance(node, yaml.MappingNode):
        found = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        message = f"the top level must be a mapping of keys, found {found}"
        return None, [Problem(file, node.start_mark.line + 1, message, "start with 'name: ...'")]
    doc = _Doc(file, data)
    _index(node, (), doc)
    return doc, []


def _yaml_hint(text: str, line: int | None) -> str:
    source = text.splitlines()[line - 1] if line and line <= len(text.splitlines()) else ""
    if re.match(r"\s*(- )?[\w-]+:\s*\{", source):
        return "a value starting with '{' is read as a YAML mapping: quote it or use 'template: |'"
    return "check indentation and quoting on this line or the one before"


def _index(node: yaml.Node, loc: Loc, doc: _Doc) -> None:
    """Record the line of every key and list item; flag duplicate keys (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in seen:
                doc.add(
                    line,
                    f"key {key!r} appears twice (first on line {seen[key]})",
                    "remove one; only the last would be used",
                )
            seen[key] = doc.lines[(*loc, key)] = line
            doc.nodes[(*loc, key)] = value_node
            _index(value_node, (*loc, key), doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[(*loc, i)] = item.start_mark.line + 1
            doc.nodes[(*loc, i)] = item
            _index(item, (*loc, i), doc)


# --- Pydantic errors back to lines ----------------------------------------------------

_ITEM_MODELS: dict[str, tuple[str, type[BaseModel]]] = {
    "inputs": ("input", InputSpec),
    "steps": ("step", StepSpec),
}
_TYPE_HINTS = {
    "string_type": 'quote the value to make it text, e.g. "yes" or "500"',
    "list_type": "write a list, e.g. [a, b]",
    "dict_type": "write a mapping of 'key: value' lines",
    "string_pattern_mismatch": "use letters, digits and underscores, not starting with a digit",
    "literal_error": "use one of the values listed",
}


def _add_validation_errors(
    doc: _Doc, error: ValidationError, model: type[BaseModel], top: str, skip: set[Loc]
) -> None:
    """Turn each Pydantic error into a Problem at the line of the key it is about."""
    for err in error.errors():
        loc: Loc = tuple(err["loc"])
        if loc in skip:
            continue
        owner, owner_model, rest = top, model, loc
        if len(loc) >= 3 and loc[0] in _ITEM_MODELS and isinstance(loc[1], int):
            kind, owner_model = _ITEM_MODELS[str(loc[0])]
            items = doc.data.get(str(loc[0]))
            name = items[loc[1]].get("name") if isinstance(items[loc[1]], dict) else None
            owner = f"{kind} {name!r}" if isinstance(name, str) else f"{kind} #{loc[1] + 1}"
            rest = loc[2:]
        key = ".".join(str(part) for part in rest)
        if err["type"] == "extra_forbidden":
            known = [k for k in owner_model.model_fields if k not in ("created_at", "last_used")]
            hint = _did_you_mean(str(loc[-1]), known) + f"known: {', '.join(known)}"
            doc.add(loc, f"{owner} has an unknown key {loc[-1]!r}", hint)
        elif err["type"] == "missing":
            doc.add(loc, f"{owner} is missing {key!r}", f"add '{loc[-1]}: ...'")
        else:
            got = repr(err.get("input"))
            got = got if len(got) <= 40 else got[:37] + "..."
            hint = _TYPE_HINTS.get(err["type"], "see the built-in files for examples")
            doc.add(loc, f"{owner}: {key}: {err['msg']} (got {got})", hint)


# --- templates ------------------------------------------------------------------------

_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


@lru_cache(maxsize=256)
def _compile(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def render_template(template: str, variables: Mapping[str, Any]) -> str:
    """Render a step prompt; `variables` are data and are never themselves rendered."""
    try:
        return _compile(template).render(dict(variables))
    except jinja2.TemplateSyntaxError as error:
        raise WriteItError(
            f"template syntax error on line {error.lineno}: {error.message}",
            hint="`writeit pipelines validate` shows the line in the pipeline file",
        ) from error
    except jinja2.UndefinedError as error:
        given = ", ".join(sorted(variables)) or "none"
        raise WriteItError(
            f"template uses a variable with no value: {error.message}",
            hint=f"variables given: {given}",
        ) from error
    except jinja2.TemplateError as error:  # includes the sandbox's SecurityError
        raise WriteItError(f"template could not be rendered: {error}") from error


def _template_line(doc: _Doc, loc: Loc, lineno: int) -> int:
    """File line of a template's `lineno`; block scalars (`|`, `>`) start on the next line."""
    node = doc.nodes.get(loc)
    if node is None:
        return doc.line(loc)
    first = node.start_mark.line + 1 + (1 if node.style in ("|", ">") else 0)
    return first + max(lineno, 1) - 1


def _step_variables(inputs: Iterable[str], earlier_steps: Iterable[str]) -> set[str]:
    steps = {f"{s}_{suffix}" for s in earlier_steps for suffix in STEP_SUFFIXES}
    return {*inputs, *TEMPLATE_EXTRAS, *steps}


def _check_templates(doc: _Doc, inputs: list[str], steps: list[tuple[int, dict]]) -> None:
    """Every variable must come from an input, an earlier step, or the documented extras."""
    names = [str(step.get("name", f"#{index + 1}")) for index, step in steps]
    for position, (index, step) in enumerate(steps):
        here, loc = names[position], ("steps", index, "template")
        if not isinstance(step.get("template"), str):
            continue
        try:
            ast = _ENV.parse(step["template"])
        except jinja2.TemplateSyntaxError as error:
            doc.add(
                _template_line(doc, loc, error.lineno or 1),
                f"step {here!r}: template syntax error: {error.message}",
                "check that every {{ }}, {% %} and {% if %}...{% endif %} is closed",
            )
            continue
        available = _step_variables(inputs, names[:position])
        for var in sorted(jinja2.meta.find_undeclared_variables(ast) - available):
            uses = [n.lineno for n in ast.find_all(jinja2.nodes.Name) if n.name == var]
            line = _template_line(doc, loc, min(uses, default=1))
            other, _, suffix = var.rpartition("_")
            if suffix in STEP_SUFFIXES and other in names[position + 1 :]:
                doc.add(
                    line,
                    f"step {here!r} uses {var} but {other} runs after it",
                    "a step can only use earlier steps' outputs; reorder the steps",
                )
            elif suffix in STEP_SUFFIXES and other == here:
                doc.add(
                    line,
                    f"step {here!r} uses {var}, its own {suffix}",
                    "a step can only use earlier steps' outputs and feedback",
                )
            else:
                hint = _did_you_mean(var, available)
                hint += f"available here: {', '.join(sorted(available))}"
                doc.add(line, f"step {here!r} uses undefined variable {var!r}", hint)


def variables_for_step(config: PipelineConfiguration, step_name: str) -> set[str]:
    """The names a step's template may use (exactly what validation checks against)."""
    config.step(step_name)  # clear error for an unknown step
    earlier = config.step_names[: config.step_names.index(step_name)]
    return _step_variables((i.name for i in config.inputs), earlier)


def step_context(
    config: PipelineConfiguration,
    step_name: str,
    *,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    feedback: Mapping[str, str] | None = None,
    guidance: str = "",
    style: str = "",
) -> dict[str, str]:
    """Every variable a step may use, "" for anything not given, ready for render_template.

    `outputs` and `feedback` are keyed by step name; the bare `feedback` variable is what
    the writer said at the step just before this one.
    """
    feedback = feedback or {}
    names = sorted(variables_for_step(config, step_name))
    context = dict.fromkeys(names, "")
    context.update({i.name: inputs.get(i.name) or i.default or "" for i in config.inputs})
    earlier = config.step_names[: config.step_names.index(step_name)]
    for name in earlier:
        context[f"{name}_output"] = outputs.get(name) or ""
        context[f"{name}_feedback"] = feedback.get(name) or ""
    context["feedback"] = (feedback.get(earlier[-1]) or "") if earlier else ""
    context.update(guidance=guidance or "", style=style or "")
    return context


# --- pipelines and styles -------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _named_items(doc: _Doc, key: str, kind: str) -> list[tuple[int, dict]]:
    """The mapping items of `inputs`/`steps` with their index, flagging duplicate names."""
    raw = doc.data.get(key)
    if not isinstance(raw, list):
        return []
    items = [(i, item) for i, item in enumerate(raw) if isinstance(item, dict)]
    first: dict[str, int] = {}
    for i, item in items:
        name = item.get("name")
        if isinstance(name, str) and name in first:
            doc.add(
                (key, i),
                f"{kind} {name!r} is defined twice (first on line {first[name]})",
                f"give each {kind} its own name",
            )
        elif isinstance(name, str):
            first[name] = doc.line((key, i))
    return items


def _check_pipeline(doc: _Doc) -> set[Loc]:
    """The data model's rules plus what a writer would trip over; returns locs already reported."""
    data, reported = doc.data, set()
    if _blank(data.get("name")):
        doc.add(("name",), "pipeline name is missing or empty", "add 'name: my-pipeline'")
        reported.add(("name",))
    for key, need in (("inputs", 1), ("steps", 2)):
        value = data.get(key)
        if value is None or (isinstance(value, list) and len(value) < need):
            count = "only one step" if value else f"no {key}"
            what = "at least one input" if need == 1 else "at least two steps"
            hint = (
                "add an input such as source_material for the writer to fill in"
                if need == 1
                else "add a step that builds on the previous step's <step>_output"
            )
            doc.add((key,), f"pipeline has {count}; it needs {what}", hint)
            reported.add((key,))
    inputs, steps = _named_items(doc, "inputs", "input"), _named_items(doc, "steps", "step")
    input_names = [it["name"] for _, it in inputs if isinstance(it.get("name"), str)]
    step_names = [it["name"] for _, it in steps if isinstance(it.get("name"), str)]
    provided = _step_variables((), step_names)
    for i, item in inputs:
        options = item.get("options")
        if item.get("name") in provided:
            doc.add(
                ("inputs", i),
                f"input {item['name']!r} clashes with a variable WriteIt provides",
                f"rename it; provided: {', '.join(sorted(provided))}",
            )
        if item.get("type") == "choice" and not options:
            doc.add(
                ("inputs", i),
                f"choice input {item.get('name')!r} has no options",
                "add 'options: [a, b, c]'",
            )
        elif isinstance(options, list) and options and item.get("default") not in (None, *options):
            doc.add(
                ("inputs", i, "default"),
                f"default {item['default']!r} is not one of the options",
                f"use one of: {', '.join(map(str, options))}",
            )
    _check_templates(doc, input_names, steps)
    return reported


def _check_style(doc: _Doc) -> set[Loc]:
    reported = set()
    if _blank(doc.data.get("name")):
        doc.add(("name",), "style name is missing or empty", "add 'name: My Style'")
        reported.add(("name",))
    if _blank(doc.data.get("content")):
        doc.add(
            ("content",),
            "style has no content",
            "content is the style guide sent to the model as its system prompt",
        )
        reported.add(("content",))
    guidelines = doc.data.get("guidelines")
    for key in guidelines if isinstance(guidelines, dict) else ():
        if key not in ("avoid", "prefer"):
            doc.add(
                ("guidelines", key),
                f"unknown guideline {key!r}",
                "only 'avoid' and 'prefer' are sent to the model",
            )
    return reported | _check_reading_level(doc)


def _check_reading_level(doc: _Doc) -> set[Loc]:
    """`reading_level: {min: 50, max: 70}`, Flesch reading ease (0 hard .. 100 easy)."""
    level = doc.data.get("reading_level")
    if level is None:
        return set()
    hint = "write it as 'reading_level: {min: 50, max: 70}' (Flesch reading ease, 0..100)"
    if not isinstance(level, dict) or not set(level) <= {"min", "max"}:
        level = level if isinstance(level, dict) else {}
        doc.add(("reading_level",), "reading_level must have only 'min' and 'max'", hint)
        return {("reading_level",), *(("reading_level", k) for k in level or ())}
    bounds = {key: level.get(key) for key in ("min", "max")}
    for key, value in bounds.items():
        ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        if not ok or (value is not None and not 0 <= value <= 100):
            doc.add(("reading_level", key), f"reading_level {key} {value!r} is not 0..100", hint)
            return {("reading_level",), ("reading_level", key)}
    low, high = bounds["min"] or 0, 100 if bounds["max"] is None else bounds["max"]
    if low > high:
        doc.add(("reading_level",), f"reading_level min {low} is above max {high}", hint)
        return {("reading_level",)}
    return set()


def _build(
    doc: _Doc | None, problems: list[Problem], model: type[BaseModel], defaults: dict[str, Any]
) -> tuple[Any, list[Problem]]:
    """Semantic checks, then Pydantic; the result is None whenever anything is wrong."""
    if doc is None:
        return None, problems
    is_pipeline = model is PipelineConfiguration
    reported = _check_pipeline(doc) if is_pipeline else _check_style(doc)
    value = None
    try:
        value = model.model_validate({**defaults, **doc.data})
    except ValidationError as error:
        top = "the pipeline" if is_pipeline else "the style"
        _add_validation_errors(doc, error, model, top, reported)
    problems = sorted(doc.problems, key=lambda p: p.line or 0)
    return (None if problems else value), problems


def parse_pipeline(
    text: str, file: str = "<text>"
) -> tuple[PipelineConfiguration | None, list[Problem]]:
    """Validate pipeline YAML text; the configuration is None whenever there is a problem."""
    return _build(*_parse_yaml(text, file), PipelineConfiguration, {})


def parse_style(
    text: str, file: str = "<text>", primer_id: str = "style"
) -> tuple[StylePrimer | None, list[Problem]]:
    return _build(*_parse_yaml(text, file), StylePrimer, {"primer_id": primer_id})


# --- loading files (cached on mtime) --------------------------------------------------

_CACHE: dict[tuple[str, Path], tuple[tuple[int, int], Any, list[Problem]]] = {}


def _parse_file(kind: str, path: Path) -> tuple[Any, list[Problem]]:
    text, problems = _read(path)
    if text is None:
        return None, problems
    if kind == "pipeline":
        return parse_pipeline(text, str(path))
    return parse_style(text, str(path), primer_id=path.stem)


def _cached(kind: str, path: Path) -> tuple[Any, list[Problem]]:
    """Parse once per (path, mtime, size); deep copies keep callers from editing the cache."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return _parse_file(kind, path)
    key, stamp = (kind, path), (stat.st_mtime_ns, stat.st_size)
    hit = _CACHE.get(key)
    if hit is None or hit[0] != stamp:
        hit = _CACHE[key] = (stamp, *_parse_file(kind, path))
    value, problems = hit[1], hit[2]
    return (value.model_copy(deep=True) if value is not None else None), list(problems)


def validate_pipeline_file(path: Path) -> list[Problem]:
    return _cached("pipeline", path)[1]


def load_pipeline(path: Path) -> PipelineConfiguration:
    config, problems = _cached("pipeline", path)
    if config is None:
        raise ConfigError(problems)
    return config


def validate_style_file(path: Path) -> list[Problem]:
    return _cached("style", path)[1]


def load_style(path: Path) -> StylePrimer:
    """A style primer; its primer_id is the file stem unless the file sets one."""
    style, problems = _cached("style", path)
    if style is None:
        raise ConfigError(problems)
    return style


# --- discovery ------------------------------------------------------------------------


class Entry(NamedTuple, Generic[T]):
    """One discovered file for a listing; unpacks as (item, path, problems)."""

    item: T | None
    path: Path
    problems: list[Problem]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def builtin(self) -> bool:
        return self.path.is_relative_to(BUILTIN_DIR)


def _discover(kind: str, extra_dirs: Iterable[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in (BUILTIN_DIR / kind, *map(Path, extra_dirs)):
        if directory.is_dir():
            files = sorted(p for ext in ("*.yaml", "*.yml") for p in directory.glob(ext))
            found.update((p.stem, p) for p in files if p.is_file() and not p.name.startswith("."))
    return dict(sorted(found.items()))


def pipeline_paths(extra_dirs: Sequence[Path] = ()) -> dict[str, Path]:
    """Pipeline name (file stem) -> winning file; `extra_dirs` follow the built-ins, later wins."""
    return _discover("pipelines", extra_dirs)


def style_paths(extra_dirs: Sequence[Path] = ()) -> dict[str, Path]:
    """Style name (file stem) -> winning file, with the same override order as pipelines."""
    return _discover("styles", extra_dirs)


def _resolve(name: str, kind: str, paths: dict[str, Path]) -> Path:
    """A known name, or a direct path to a .yaml file."""
    if name in paths:
        return paths[name]
    if name.endswith((".yaml", ".yml")) or "/" in name or "\\" in name:
        candidate = Path(name).expanduser()
        if candidate.is_file():
            return candidate
        raise WriteItError(f"no {kind} file at {name}", hint="check the path")
    known = ", ".join(paths) or "none"
    raise WriteItError(
        f"unknown {kind} {name!r}",
        hint=_did_you_mean(name, paths) + f"known {kind}s: {known}; or pass a path to a .yaml file",
    )


def get_pipeline(name: str, extra_dirs: Sequence[Path] = ()) -> PipelineConfiguration:
    return load_pipeline(_resolve(name, "pipeline", pipeline_paths(extra_dirs)))


def get_style(name: str, extra_dirs: Sequence[Path] = ()) -> StylePrimer:
    return load_style(_resolve(name, "style", style_paths(extra_dirs)))


def _entries(kind: str, paths: dict[str, Path]) -> list[Entry[Any]]:
    entries = []
    for path in paths.values():
        item, problems = _cached(kind, path)
        entries.append(Entry(item, path, problems))
    return entries


def list_pipelines(extra_dirs: Sequence[Path] = ()) -> list[Entry[PipelineConfiguration]]:
    """Every discoverable pipeline, broken ones included with their problems."""
    return _entries("pipeline", pipeline_paths(extra_dirs))


def list_styles(extra_dirs: Sequence[Path] = ()) -> list[Entry[StylePrimer]]:
    """Every discoverable style, broken ones included with their problems."""
    return _entries("style", style_paths(extra_dirs))
