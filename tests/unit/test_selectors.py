"""Label and field selectors: parsing, canonical strings, matching and upstream's error texts."""

import pytest

from pyk8s.api import errors
from pyk8s.api.selectors import (
    EVERYTHING,
    NOTHING,
    LabelRequirement,
    label_selector_from_set,
    label_selector_from_spec,
    object_field,
    object_fields,
    parse_field_selector,
    parse_label_selector,
    validate_field_selector,
)

WEB_FRONTEND = {"app": "web", "tier": "frontend", "env": "prod"}
DATABASE = {"app": "db", "tier": "db", "env": "qa", "partition": "a"}
CANARY = {"app": "web", "canary": "true"}


def bad_label_selector(text: str) -> str:
    with pytest.raises(errors.BadRequest) as raised:
        parse_label_selector(text)
    assert raised.value.code == 400
    return raised.value.message


def bad_field_selector(text: str) -> str:
    with pytest.raises(errors.BadRequest) as raised:
        parse_field_selector(text)
    return raised.value.message


# ---- label selector strings ------------------------------------------------------------

def test_equality_and_inequality_are_anded():
    selector = parse_label_selector("app=web,tier!=db")
    assert selector.matches(WEB_FRONTEND)
    assert not selector.matches(DATABASE)
    assert not selector.matches({"app": "web", "tier": "db"})


def test_not_equals_matches_objects_without_the_label():
    assert parse_label_selector("tier!=db").matches({"app": "x"})


def test_double_equals_is_equality():
    selector = parse_label_selector("app==web")
    assert selector.matches(WEB_FRONTEND)
    assert not selector.matches(DATABASE)
    assert str(selector) == "app==web"


def test_set_inclusion_with_spaces_inside_parentheses():
    selector = parse_label_selector("env in (prod, qa)")
    assert selector.matches(WEB_FRONTEND)
    assert selector.matches(DATABASE)
    assert not selector.matches({"env": "dev"})
    assert not selector.matches({})


def test_set_exclusion_matches_missing_label():
    selector = parse_label_selector("env notin (prod)")
    assert not selector.matches(WEB_FRONTEND)
    assert selector.matches(DATABASE)
    assert selector.matches({})


def test_bang_key_requires_label_absent():
    selector = parse_label_selector("!canary")
    assert selector.matches(WEB_FRONTEND)
    assert not selector.matches(CANARY)


def test_bare_key_requires_label_present():
    selector = parse_label_selector("partition")
    assert selector.matches(DATABASE)
    assert not selector.matches(WEB_FRONTEND)


def test_bare_key_matches_label_with_empty_value():
    assert parse_label_selector("partition").matches({"partition": ""})


def test_greater_and_less_than_compare_integers():
    selector = parse_label_selector("replicas>2,replicas<10")
    assert selector.matches({"replicas": "5"})
    assert not selector.matches({"replicas": "2"})
    assert not selector.matches({"replicas": "10"})
    assert not selector.matches({"replicas": "many"})
    assert not selector.matches({})


def test_empty_value_after_equals_matches_empty_label():
    selector = parse_label_selector("a=")
    assert selector.matches({"a": ""})
    assert not selector.matches({"a": "x"})
    assert not selector.matches({})


def test_empty_string_and_blank_select_everything():
    for text in ("", "   "):
        selector = parse_label_selector(text)
        assert selector.empty()
        assert selector.matches({})
        assert selector.matches(WEB_FRONTEND)
        assert str(selector) == ""


def test_none_labels_are_treated_as_no_labels():
    assert parse_label_selector("!canary").matches(None)
    assert not parse_label_selector("app=web").matches(None)


def test_whitespace_is_tolerated_everywhere():
    selector = parse_label_selector("  app = web ,\ttier\n!= db , env   in(prod,qa) ")
    assert str(selector) == "app=web,env in (prod,qa),tier!=db"


def test_canonical_string_sorts_requirements_by_key_and_values():
    selector = parse_label_selector("z notin (c,a,b),!y,app=web,m in (q,p)")
    assert str(selector) == "app=web,m in (p,q),!y,z notin (a,b,c)"


def test_canonical_string_round_trips():
    text = "app=web,env in (prod,qa),!canary,partition,tier!=db,n>3"
    selector = parse_label_selector(text)
    assert parse_label_selector(str(selector)) == selector


def test_empty_items_in_value_set_are_empty_strings():
    selector = parse_label_selector("x in (foo,,baz),y,z notin ()")
    assert str(selector) == "x in (,baz,foo),y,z notin ()"
    assert selector.matches({"x": "", "y": "1"})
    assert not selector.matches({"x": "", "y": "1", "z": ""})


def test_in_and_notin_are_identifiers_outside_operator_position():
    selector = parse_label_selector("in in (in, notin)")
    assert selector.matches({"in": "notin"})
    assert selector.requirements == (LabelRequirement("in", "in", ("in", "notin")),)


def test_prefixed_keys_are_accepted():
    selector = parse_label_selector("app.kubernetes.io/name=web")
    assert selector.matches({"app.kubernetes.io/name": "web"})


def test_selector_is_immutable():
    selector = parse_label_selector("a=b")
    with pytest.raises(AttributeError):
        selector.extra = 1


def test_requires_exact_match_reports_pinned_value():
    selector = parse_label_selector("app=web,env in (prod),tier in (a,b)")
    assert selector.requires_exact_match("app") == "web"
    assert selector.requires_exact_match("env") == "prod"
    assert selector.requires_exact_match("tier") is None
    assert selector.requires_exact_match("missing") is None


# ---- label selector errors (upstream's exact wording) -------------------------------------

def test_missing_operator_between_words_names_expected_operators():
    assert bad_label_selector("a b") == \
        "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"


def test_trailing_comma_expects_identifier():
    assert bad_label_selector("a=b,") == "found '', expected: identifier after ','"


def test_junk_after_requirement_expects_comma():
    assert bad_label_selector("a=b c") == "found 'c', expected: ',' or 'end of string'"


def test_bang_key_followed_by_operator_is_rejected():
    assert bad_label_selector("!a=b") == "found '=', expected: ',' or 'end of string'"


def test_leading_operator_is_rejected():
    assert bad_label_selector("=a") == "found '=', expected: !, identifier, or 'end of string'"


def test_unclosed_value_set_is_rejected():
    assert bad_label_selector("a in (b") == "unable to parse requirement: found '', expected: ',' or ')'"


def test_in_without_parenthesis_is_rejected():
    assert bad_label_selector("a in b") == "unable to parse requirement: found 'b' expected: '('"


def test_invalid_key_reports_nil_path_like_upstream():
    message = bad_label_selector("-a=b")
    assert message.startswith('unable to parse requirement: <nil>: Invalid value: "-a": name part must consist of '
                              "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                              "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
                              "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def test_key_with_two_slashes_is_not_a_qualified_name():
    assert "a qualified name must consist of" in bad_label_selector("a/b/c")


def test_uppercase_prefix_is_not_a_dns_subdomain():
    assert "prefix part a lowercase RFC 1123 subdomain" in bad_label_selector("Example.com/a")


def test_key_name_longer_than_63_characters_is_rejected():
    assert "name part must be no more than 63 characters" in bad_label_selector("k" * 64)


def test_invalid_value_reports_indexed_keyed_path():
    message = bad_label_selector("a=-b")
    assert message.startswith('unable to parse requirement: values[0][a]: Invalid value: "-b": '
                              "a valid label must be an empty string or consist of alphanumeric characters")


def test_non_integer_bound_for_greater_than_is_rejected():
    assert bad_label_selector("a>x") == ('unable to parse requirement: values[0]: Invalid value: "x": '
                                         "for 'Gt', 'Lt' operators, the value must be an integer")


# ---- metav1.LabelSelector ----------------------------------------------------------------

def test_nil_spec_selects_nothing():
    selector = label_selector_from_spec(None)
    assert selector is NOTHING
    assert not selector.matches({})
    assert not selector.matches(WEB_FRONTEND)
    assert not selector.empty()
    assert str(selector) == ""


def test_empty_spec_selects_everything():
    for spec in ({}, {"matchLabels": {}}, {"matchLabels": None, "matchExpressions": []}):
        selector = label_selector_from_spec(spec)
        assert selector is EVERYTHING
        assert selector.matches({})
        assert selector.empty()


def test_match_labels_become_equality_requirements():
    selector = label_selector_from_spec({"matchLabels": {"tier": "frontend", "app": "web"}})
    assert str(selector) == "app=web,tier=frontend"
    assert selector.matches(WEB_FRONTEND)
    assert not selector.matches({"app": "web"})


def test_match_expressions_convert_each_operator():
    selector = label_selector_from_spec({"matchExpressions": [
        {"key": "env", "operator": "In", "values": ["qa", "prod"]},
        {"key": "tier", "operator": "NotIn", "values": ["db"]},
        {"key": "app", "operator": "Exists"},
        {"key": "canary", "operator": "DoesNotExist"},
    ]})
    assert str(selector) == "app,!canary,env in (prod,qa),tier notin (db)"
    assert selector.matches(WEB_FRONTEND)
    assert not selector.matches(DATABASE)
    assert not selector.matches({**WEB_FRONTEND, "canary": "yes"})


def test_match_labels_and_expressions_are_anded():
    selector = label_selector_from_spec({"matchLabels": {"app": "web"},
                                         "matchExpressions": [{"key": "env", "operator": "In", "values": ["qa"]}]})
    assert not selector.matches(WEB_FRONTEND)
    assert selector.matches({"app": "web", "env": "qa"})


def test_unknown_spec_operator_is_rejected_with_upstream_message():
    with pytest.raises(errors.BadRequest) as raised:
        label_selector_from_spec({"matchExpressions": [{"key": "a", "operator": "Seriously"}]})
    assert raised.value.message == '"Seriously" is not a valid label selector operator'


def test_in_operator_without_values_is_rejected():
    with pytest.raises(errors.BadRequest) as raised:
        label_selector_from_spec({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    assert raised.value.message == "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"


def test_exists_operator_with_values_is_rejected():
    with pytest.raises(errors.BadRequest) as raised:
        label_selector_from_spec({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert raised.value.message == 'values: Invalid value: ["x"]: values set must be empty for exists and does not exist'


def test_invalid_match_label_key_is_rejected():
    with pytest.raises(errors.BadRequest) as raised:
        label_selector_from_spec({"matchLabels": {"bad key": "x"}})
    assert raised.value.message.startswith('key: Invalid value: "bad key": name part must consist of')


def test_map_selector_matches_exactly_and_empty_map_selects_everything():
    assert label_selector_from_set({"app": "web"}).matches(WEB_FRONTEND)
    assert not label_selector_from_set({"app": "web"}).matches(DATABASE)
    assert label_selector_from_set({}).empty()
    assert label_selector_from_set(None).matches(DATABASE)


def test_selectors_compare_equal_by_requirements():
    assert parse_label_selector("b=1,a=2") == label_selector_from_set({"a": "2", "b": "1"})
    assert NOTHING != EVERYTHING


# ---- field selectors ---------------------------------------------------------------------

POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "hostNetwork": False},
    "status": {"phase": "Pending"},
}


def test_field_equality_on_name():
    selector = parse_field_selector("metadata.name=web-1")
    assert selector.matches({"metadata.name": "web-1"})
    assert not selector.matches({"metadata.name": "web-2"})
    assert selector.requirements == [("metadata.name", "=", "web-1")]


def test_field_inequality_and_empty_value_are_anded():
    selector = parse_field_selector("status.phase!=Running,spec.nodeName=")
    assert selector.matches({"status.phase": "Pending", "spec.nodeName": ""})
    assert selector.matches({"status.phase": "Pending"})  # missing field is ""
    assert not selector.matches({"status.phase": "Running", "spec.nodeName": ""})
    assert not selector.matches({"status.phase": "Pending", "spec.nodeName": "node-a"})


def test_field_requirements_are_sorted_by_term_text():
    selector = parse_field_selector("status.phase!=Running,spec.nodeName=")
    assert str(selector) == "spec.nodeName=,status.phase!=Running"


def test_double_equals_is_plain_equality_for_fields():
    selector = parse_field_selector("metadata.name==web-1")
    assert selector.requirements == [("metadata.name", "=", "web-1")]
    assert str(selector) == "metadata.name=web-1"


def test_field_matching_calls_a_getter_lazily():
    asked = []

    def fields(name):
        asked.append(name)
        return object_field(POD, name)

    assert parse_field_selector("spec.nodeName=node-a").matches(fields)
    assert asked == ["spec.nodeName"]


def test_empty_field_selector_selects_everything():
    for text in ("", ",", None):
        selector = parse_field_selector(text)
        assert selector.empty()
        assert selector.matches({})


def test_escaped_comma_and_equals_are_data():
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert selector.requirements == [("metadata.name", "=", "a,b=c\\d")]
    assert str(selector) == r"metadata.name=a\,b\=c\\d"


def test_unknown_escape_is_rejected():
    assert bad_field_selector(r"a=b\x") == r"invalid field selector: invalid escape sequence: \x"


def test_trailing_backslash_is_rejected():
    assert bad_field_selector("a=b\\") == "invalid field selector: invalid escape sequence: \\"


def test_unescaped_equals_in_value_is_rejected_with_code_point():
    assert bad_field_selector("a=b=c") == "invalid field selector: unescaped character in value: 61"


def test_term_without_operator_is_rejected():
    assert bad_field_selector("a=b,phase") == "invalid selector: 'a=b,phase'; can't understand 'phase'"


def test_unsupported_field_label_is_rejected():
    selector = parse_field_selector("spec.nodeName=a,status.hostIP=b")
    with pytest.raises(errors.BadRequest) as raised:
        validate_field_selector(selector, ["spec.nodeName"], "Pod")
    assert raised.value.message == "field label not supported: status.hostIP"


def test_metadata_name_and_namespace_are_always_selectable():
    validate_field_selector(parse_field_selector("metadata.name=a,metadata.namespace=b"), [], "ConfigMap")


def test_object_field_renders_strings_booleans_numbers_and_missing():
    assert object_field(POD, "spec.nodeName") == "node-a"
    assert object_field(POD, "spec.hostNetwork") == "false"
    assert object_field({"spec": {"unschedulable": True}}, "spec.unschedulable") == "true"
    assert object_field({"count": 3}, "count") == "3"
    assert object_field(POD, "status.podIP") == ""
    assert object_field(POD, "spec.nodeName.deeper") == ""
    assert object_field({"a": None}, "a") == ""


def test_object_fields_maps_selector_names_to_object_paths():
    event = {"metadata": {"name": "e"}, "source": {"component": "kubelet"}}
    fields = object_fields(event, {"source": "source.component"})
    assert parse_field_selector("source=kubelet,metadata.name=e").matches(fields)
