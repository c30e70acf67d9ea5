"""Behaviour of executions.templating that playbooks rely on (DSL §2, §10)."""

import json
import pickle

import pytest

from executions.templating import (
    OutputDict,
    ResultDict,
    ResultList,
    TemplateError,
    is_template,
    plain,
    referenced_names,
    render_condition,
    render_text,
    render_value,
    wrap_output,
    wrap_result,
)


@pytest.fixture
def ctx():
    return {
        "cfg": {"host": "db", "port": 5432},
        "items": [1, 2, 3],
        "flag": "False",
        "zip": "01234",
        "name": "world",
        "count": 7,
        "nothing": None,
    }


# --- is_template --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ x }}", True),
        ("{% if x %}y{% endif %}", True),
        ("plain text", False),
        ("{ not: template }", False),
        (42, False),
        (None, False),
        (["{{ x }}"], False),
    ],
)
def test_is_template(value, expected):
    assert is_template(value) is expected


# --- render_value: structure and non-templates --------------------------------


def test_non_template_values_are_returned_untouched(ctx):
    assert render_value(5, ctx) == 5
    assert render_value(None, ctx) is None
    assert render_value(True, ctx) is True
    # No template markers means no typing at all.
    assert render_value("42", ctx) == "42"
    assert render_value("true", ctx) == "true"
    assert render_value("[1, 2]", ctx) == "[1, 2]"


def test_dicts_and_lists_render_recursively_but_keys_do_not(ctx):
    value = {"{{ name }}": "{{ count }}", "nested": ["{{ items }}", ("{{ zip }}",)]}
    assert render_value(value, ctx) == {
        "{{ name }}": 7,
        "nested": [[1, 2, 3], ["01234"]],
    }


def test_rendering_does_not_mutate_the_input(ctx):
    value = {"a": ["{{ count }}"]}
    render_value(value, ctx)
    assert value == {"a": ["{{ count }}"]}


# --- render_value: single-path fast path --------------------------------------


def test_single_path_returns_the_same_object(ctx):
    assert render_value("{{ cfg }}", ctx) is ctx["cfg"]
    assert render_value("{{ items }}", ctx) is ctx["items"]


def test_single_path_keeps_the_stored_type(ctx):
    # A string stays a string, even when it looks like a bool or a number.
    assert render_value("{{ flag }}", ctx) == "False"
    assert render_value("{{ zip }}", ctx) == "01234"
    assert render_value("{{ count }}", ctx) == 7
    assert render_value("{{ nothing }}", ctx) is None


def test_single_path_ignores_surrounding_whitespace_and_trim_markers(ctx):
    assert render_value("  {{ cfg.port }}\n", ctx) == 5432
    assert render_value("{{- cfg.port -}}", ctx) == 5432
    assert render_value("{{cfg.host}}", ctx) == "db"


@pytest.mark.parametrize(
    "template",
    [
        "{{ data.rows.0.id }}",
        "{{ data.rows[0].id }}",
        "{{ data['rows'][0]['id'] }}",
        '{{ data["rows"].0["id"] }}',
    ],
)
def test_single_path_segments(template):
    context = {"data": {"rows": [{"id": "007"}]}}
    assert render_value(template, context) == "007"


def test_quoted_segment_keeps_dots_and_spaces():
    context = {"a": {"x.y ": ["ok"]}}
    assert render_value("{{ a[ 'x.y ' ][\n0\n] }}", context) == "ok"


def test_numeric_segment_also_finds_a_string_key():
    assert render_value("{{ by_code.404 }}", {"by_code": {"404": "nf"}}) == "nf"


def test_single_path_missing_is_none_when_lenient(ctx):
    assert render_value("{{ missing }}", ctx) is None
    assert render_value("{{ cfg.missing.deeper }}", ctx) is None
    assert render_value("{{ items.9 }}", ctx) is None
    assert render_value("{{ nothing.x }}", ctx) is None


def test_single_path_missing_raises_when_strict(ctx):
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render_value("{{ missing }}", ctx, strict=True)
    with pytest.raises(TemplateError, match="'cfg.user' is undefined"):
        render_value("{{ cfg.user.name }}", ctx, strict=True)


def test_single_path_does_not_return_dict_methods(ctx):
    # A dict exposes only its keys as values; `cfg.items` is not dict.items.
    assert render_value("{{ cfg.items }}", ctx) is None


def test_single_path_reads_plain_object_attributes():
    class Point:
        x = 3

    assert render_value("{{ p.x }}", {"p": Point()}) == 3


def test_literal_keywords_are_not_treated_as_names():
    assert render_value("{{ true }}", {}) is True
    assert render_value("{{ none }}", {"none": "shadow"}) is None


# --- key-first lookup (DSL §10.1) ---------------------------------------------


def test_dotted_name_reads_the_key_before_the_dict_method():
    context = {"start": {"items": [1, 2], "keys": "k", "get": "g"}}
    assert render_value("{{ start.items }}", context) == [1, 2]
    assert render_value("{{ start.items | length }}", context) == 2
    assert render_text("{{ start.keys }}/{{ start.get }}", context) == "k/g"


def test_dict_methods_still_callable_when_no_such_key(ctx):
    assert render_value("{{ cfg.get('user', 'anon') }}", ctx) == "anon"
    assert render_value("{{ cfg.keys() | list | length }}", ctx) == 2


# --- render_value: typing of rendered text ------------------------------------


def test_filter_result_is_typed(ctx):
    assert render_value("{{ items | length }}", ctx) == 3
    assert render_value("{{ count * 1.5 }}", ctx) == 10.5
    assert render_value("{{ count > 3 }}", ctx) is True
    assert render_value("{{ '42' | int }}", ctx) == 42


def test_text_with_several_expressions_stays_a_string(ctx):
    assert render_value("{{ name }}-{{ count }}", ctx) == "world-7"
    assert render_value("id {{ count }}", ctx) == "id 7"


def test_tojson_keeps_a_json_string(ctx):
    out = render_value("{{ cfg | tojson }}", ctx)
    assert isinstance(out, str)
    assert json.loads(out) == ctx["cfg"]
    assert render_value("{{ count|tojson }}", ctx) == "7"
    assert render_value("{{ flag | tojson }}", ctx) == '"False"'


def test_tojson_is_plain_json_not_html_escaped():
    out = render_value("{{ v | tojson }}", {"v": {"b": "<é&'>", "a": 1}})
    assert out == '{"b": "<é&\'>", "a": 1}'


def test_tojson_unwraps_results_and_stringifies_unknown_types():
    import datetime

    context = {"r": wrap_result({"when": datetime.date(2025, 12, 11)})}
    assert json.loads(render_value("{{ r | tojson }}", context)) == {
        "when": "2025-12-11"
    }


def test_tojson_of_undefined_is_null_when_lenient_and_error_when_strict():
    assert render_value("{{ missing | tojson }}", {}) == "null"
    with pytest.raises(TemplateError):
        render_value("{{ missing | tojson }}", {}, strict=True)


def test_rendered_string_false_becomes_bool(ctx):
    assert render_value("{{ flag | string }}", ctx) is False
    assert render_value("{{ 'TRUE' }}", ctx) is True


def test_default_dict_comes_back_via_python_literal():
    context = {"d": {"a": 1, "b": None, "c": True, "t": (1, 2)}}
    assert render_value("{{ d | default({}) }}", context) == {
        "a": 1,
        "b": None,
        "c": True,
        "t": [1, 2],
    }
    assert render_value("{{ missing | default({}) }}", {}) == {}
    assert render_value("{{ missing | default([]) }}", {}) == []


def test_json_looking_text_is_parsed():
    assert render_value("{{ '{\"a\": [true, null]}' }}", {}) == {"a": [True, None]}
    assert render_value("[{{ 1 }}, {{ 2 }}]", {}) == [1, 2]


def test_brace_text_that_is_not_data_stays_a_string():
    assert render_value("{{ '{' }}name{{ '}' }}", {}) == "{name}"
    # A set literal is not data.
    assert render_value("{{ '{1, 2}' }}", {}) == "{1, 2}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        ("-3", -3),
        ("0", 0),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("2.5e3", 2500.0),
        ("null", None),
        ("None", None),
        ("false", False),
        ("01234", "01234"),
        ("007.5", "007.5"),
        ("1.2.3", "1.2.3"),
        ("2025-12-11", "2025-12-11"),
        ("hello", "hello"),
        ("1e5", "1e5"),
        ("(1, 2)", "(1, 2)"),
        ("", ""),
    ],
)
def test_typing_of_rendered_text(text, expected):
    out = render_value("{{ t | string }}", {"t": text})
    assert out == expected
    assert type(out) is type(expected)


def test_untyped_text_keeps_its_whitespace():
    assert render_value("{{ a }} \n", {"a": "x", "b": 1}) == "x"  # single path
    assert render_value("{{ a ~ ' ' }}", {"a": "x"}) == "x "


# --- undefined names ----------------------------------------------------------


def test_lenient_undefined_renders_empty_inside_text():
    assert render_value("a{{ missing }}b", {}) == "ab"
    assert render_text("[{{ missing.x.y }}]", {}) == "[]"


def test_chained_default_works_when_lenient():
    assert render_value("{{ a.b.c | default('x') }}", {}) == "x"
    assert render_value("{{ a.b.c | default(5) }}", {"a": {}}) == 5


def test_strict_undefined_raises_inside_text():
    with pytest.raises(TemplateError, match="undefined"):
        render_value("n={{ missing }}", {}, strict=True)
    with pytest.raises(TemplateError):
        render_text("{{ a.b.c }}", {"a": {}}, strict=True)


# --- errors -------------------------------------------------------------------


def test_syntax_error_names_the_template():
    with pytest.raises(TemplateError) as info:
        render_value("{{ count + }}", {"count": 1})
    message = str(info.value)
    assert "{{ count + }}" in message
    assert "syntax error" in message
    assert "\n" not in message


def test_unknown_filter_is_reported():
    with pytest.raises(TemplateError, match="No filter named 'nope'"):
        render_value("{{ 1 | nope }}", {})


def test_runtime_exception_is_reported_not_swallowed():
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render_value("{{ 1 / 0 }}", {})


def test_long_template_is_truncated_in_the_message():
    template = "{{ 1 / 0 }}" + "x" * 500
    with pytest.raises(TemplateError) as info:
        render_value(template, {})
    assert len(str(info.value)) < 250
    assert info.value.template == template


def test_template_error_survives_pickling():
    with pytest.raises(TemplateError) as info:
        render_value("{{ 1 / 0 }}", {})
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)


# --- render_text --------------------------------------------------------------


def test_render_text_is_untyped(ctx):
    assert render_text("{{ count }}", ctx) == "7"
    assert render_text("{{ cfg }}", ctx) == "{'host': 'db', 'port': 5432}"


def test_render_text_leaves_non_templates_alone():
    code = "def main():\n    return {'a': 1}\n"
    assert render_text(code, {}) is code


def test_render_text_keeps_trailing_newline_and_sql_escaping():
    sql = "SELECT '{{ v | replace(\"'\", \"''\") }}';\n"
    assert render_text(sql, {"v": "O'Neil"}) == "SELECT 'O''Neil';\n"


# --- custom filters -----------------------------------------------------------


def test_b64_and_fromjson_filters():
    assert render_value("{{ 'héllo' | b64encode }}", {}) == "aMOpbGxv"
    assert render_value("{{ 'aMOpbGxv' | b64decode }}", {}) == "héllo"
    assert render_value("{{ ('{\"a\": 1}' | fromjson).a }}", {}) == 1


def test_builtin_filters_are_available(ctx):
    assert render_value("{{ items | first }}", ctx) == 1
    assert render_value("{{ 2.567 | round(1) }}", ctx) == 2.6
    assert render_value("{{ 'AbC' | lower }}", ctx) == "abc"
    assert render_value("{{ range(3) | list }}", ctx) == [0, 1, 2]


# --- wrapped step results (DSL §6.4) ------------------------------------------


def test_wrap_result_types():
    assert type(wrap_result({"a": 1})) is ResultDict
    assert type(wrap_result([1])) is ResultList
    assert wrap_result("s") == "s"
    wrapped = wrap_result({"a": 1})
    assert wrap_result(wrapped) is wrapped


def test_data_and_result_alias_a_wrapped_dict():
    context = {"res": wrap_result({"x": 1})}
    assert render_value("{{ res.data.x }}", context) == 1
    assert render_value("{{ res.result.x }}", context) == 1
    assert render_value("{{ res.data.x + 1 }}", context) == 2
    assert render_value("{{ res['data']['x'] }}", context) == 1


def test_real_data_key_wins_over_the_alias():
    context = {"res": wrap_result({"data": {"x": "inner"}, "x": "outer"})}
    assert render_value("{{ res.data.x }}", context) == "inner"
    assert render_text("{{ res.data.x }}", context) == "inner"


def test_plain_dicts_have_no_alias():
    assert render_value("{{ res.data }}", {"res": {"x": 1}}) is None


def test_result_alias_on_a_wrapped_list():
    context = {"lst": wrap_result([{"id": 1}, {"id": 2}])}
    assert render_value("{{ lst.result }}", context) == [{"id": 1}, {"id": 2}]
    assert render_value("{{ lst.result | length }}", context) == 2
    assert render_value("{{ lst.data[1].id }}", context) == 2


def test_values_read_from_a_wrapper_are_not_rewrapped():
    inner = {"k": 1}
    context = {"res": wrap_result({"inner": inner})}
    assert render_value("{{ res.inner }}", context) is inner


# --- outcome envelope (DSL §5.0) ----------------------------------------------


@pytest.fixture
def out_ctx():
    envelope = {
        "status": "ok",
        "data": {"item_name": "widget", "status_code": 200},
        "meta": {"attempt": 1},
    }
    return {"output": wrap_output(envelope)}


def test_output_envelope_keys(out_ctx):
    assert type(out_ctx["output"]) is OutputDict
    assert render_value("{{ output.status }}", out_ctx) == "ok"
    assert render_value("{{ output.meta.attempt }}", out_ctx) == 1


def test_output_result_and_response_alias_data(out_ctx):
    data = out_ctx["output"]["data"]
    assert render_value("{{ output.result }}", out_ctx) is data
    assert render_value("{{ output.response.status_code }}", out_ctx) == 200
    assert render_value("{{ output.result.item_name | upper }}", out_ctx) == "WIDGET"


def test_output_falls_through_to_data(out_ctx):
    assert render_value("{{ output.item_name }}", out_ctx) == "widget"
    assert render_text("{{ output.item_name }}", out_ctx) == "widget"
    # The envelope's own `status` still wins over data's fields.
    assert render_value("{{ output.status }}", out_ctx) == "ok"


def test_output_error_envelope():
    envelope = {"status": "error", "error": {"kind": "timeout", "retryable": True}}
    context = {"output": wrap_output(envelope)}
    assert render_value("{{ output.error.retryable }}", context) is True
    assert render_value("{{ output.result }}", context) is None
    assert render_value("{{ output.data.x | default('d') }}", context) == "d"


# --- plain --------------------------------------------------------------------


def test_plain_unwraps_recursively():
    value = wrap_result({"a": wrap_result([1, (2, 3)]), "o": wrap_output({"x": 1})})
    result = plain(value)
    assert result == {"a": [1, [2, 3]], "o": {"x": 1}}
    assert type(result) is dict
    assert type(result["a"]) is list
    assert type(result["o"]) is dict
    assert json.dumps(result)


def test_plain_returns_plain_data_as_is():
    value = {"a": [1, {"b": 2}]}
    assert plain(value) is value


# --- render_condition (DSL §10.2) ---------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{{ 'False' }}", False),
        ("{{ 3 }}", True),
        ("{{ 0 }}", False),
        ("{{ [] }}", False),
        ("{{ [0] }}", True),
        ("{{ 'no' }}", False),
        ("{{ ' NULL ' }}", False),
        ("{{ 'yes' }}", True),
        ("{{ count > 5 }}", True),
        ("{{ count < 5 }}", False),
        ("{{ flag }}", False),
        ("{{ empty }}", False),
        ("false", False),
        ("anything", True),
        (True, True),
        (False, False),
        (0, False),
        (2, True),
        (None, False),
    ],
)
def test_render_condition(when, expected):
    context = {"count": 7, "flag": "false", "empty": ""}
    assert render_condition(when, context) == (expected, None)


def test_render_condition_errors_are_false_with_a_message():
    result, message = render_condition("{{ missing.x }}", {})
    assert result is False
    assert "missing" in message and "{{ missing.x }}" in message
    result, message = render_condition("{{ 1 + }}", {})
    assert result is False
    assert "syntax error" in message


def test_render_condition_uses_wrapped_results():
    context = {"fetch": wrap_result({"ok": True}), "out": wrap_output({"data": {}})}
    assert render_condition("{{ fetch.data.ok }}", context) == (True, None)
    assert render_condition("{{ out.result.ok | default(false) }}", context) == (
        False,
        None,
    )


# --- referenced_names ---------------------------------------------------------


def test_referenced_names_returns_root_names():
    value = {
        "url": "{{ base }}/items/{{ fetch.data.id }}",
        "rows": ["{{ iter.row['x'] | default(other) }}", 5, None],
        "{{ key_is_not_rendered }}": "plain",
        "loop": "{% for r in rows %}{{ r.x }}{% endfor %}",
        "set": "{% set y = 1 %}{{ y }}",
    }
    assert referenced_names(value) == {"base", "fetch", "iter", "other", "rows"}


def test_referenced_names_skips_broken_and_plain_strings():
    assert referenced_names("{{ oops + }}") == set()
    assert referenced_names("no template") == set()
    assert referenced_names(42) == set()


def test_referenced_names_result_is_a_fresh_set():
    names = referenced_names("{{ a }}")
    names.add("b")
    assert referenced_names("{{ a }}") == {"a"}
