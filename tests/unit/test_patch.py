"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), including the RFCs' own examples."""

import copy

import pytest

from pyk8s.api import errors
from pyk8s.api.patch import JsonPatchFailed, deep_copy_json, json_merge_patch, json_patch, parse_json_pointer

# ---- RFC 7386 ----------------------------------------------------------------------------

RFC7386_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("target, patch, expected", RFC7386_APPENDIX_A)
def test_merge_patch_matches_rfc7386_appendix(target, patch, expected):
    assert json_merge_patch(target, patch) == expected


def test_merge_patch_rfc7386_section3_example():
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
              "tags": ["example", "sample"], "content": "This will be unchanged"}
    patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890",
             "author": {"familyName": None}, "tags": ["example"]}
    assert json_merge_patch(target, patch) == {
        "title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
        "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}


def test_merge_patch_never_mutates_target_or_patch():
    target = {"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"replicas": 1}}
    patch = {"metadata": {"labels": {"tier": None, "new": "x"}}, "spec": {"ports": [{"port": 80}]}}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    result = json_merge_patch(target, patch)
    assert target == target_before and patch == patch_before
    result["spec"]["ports"][0]["port"] = 81
    result["spec"]["replicas"] = 5
    assert patch == patch_before and target == target_before


def test_merge_patch_result_shares_no_containers_with_target():
    target = {"untouched": {"deep": [1, 2]}}
    result = json_merge_patch(target, {"other": 1})
    result["untouched"]["deep"].append(3)
    assert target == {"untouched": {"deep": [1, 2]}}


def test_merge_patch_object_into_scalar_replaces_it():
    assert json_merge_patch({"a": 1}, {"a": {"b": 2, "c": None}}) == {"a": {"b": 2}}


# ---- RFC 6902 appendix A -------------------------------------------------------------------

def test_add_object_member():
    assert json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]) == \
        {"baz": "qux", "foo": "bar"}


def test_add_array_element_inserts_before_index():
    assert json_patch({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]) == \
        {"foo": ["bar", "qux", "baz"]}


def test_remove_object_member():
    assert json_patch({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}]) == {"foo": "bar"}


def test_remove_array_element():
    assert json_patch({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}]) == \
        {"foo": ["bar", "baz"]}


def test_replace_value():
    assert json_patch({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}]) == \
        {"baz": "boo", "foo": "bar"}


def test_move_value():
    document = {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}
    assert json_patch(document, [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]) == \
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}


def test_move_array_element():
    document = {"foo": ["all", "grass", "cows", "eat"]}
    assert json_patch(document, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}]) == \
        {"foo": ["all", "cows", "eat", "grass"]}


def test_test_operation_success_leaves_document_unchanged():
    document = {"baz": "qux", "foo": ["a", 2, "c"]}
    assert json_patch(document, [{"op": "test", "path": "/baz", "value": "qux"},
                                 {"op": "test", "path": "/foo/1", "value": 2}]) == document


def test_test_operation_failure_is_422_with_generic_wire_message():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}])
    failure = raised.value
    assert failure.code == 422 and failure.reason == "Invalid"
    assert failure.detail == 'testing value "/baz" failed: test failed'
    assert failure.status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid", "details": {}, "code": 422}


def test_add_nested_member_object():
    assert json_patch({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}]) == \
        {"foo": "bar", "child": {"grandchild": {}}}


def test_unrecognized_operation_members_are_ignored():
    assert json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]) == \
        {"foo": "bar", "baz": "qux"}


def test_add_to_nonexistent_parent_fails():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}])
    assert raised.value.detail == 'add operation does not apply: doc is missing path: "/baz/bat"'


def test_pointer_escapes_decode_tilde_one_before_tilde_zero():
    document = {"/": 9, "~1": 10}
    assert json_patch(document, [{"op": "test", "path": "/~01", "value": 10}]) == document


def test_test_distinguishes_strings_from_numbers():
    with pytest.raises(JsonPatchFailed):
        json_patch({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}])


def test_add_array_value_with_append_marker():
    assert json_patch({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]) == \
        {"foo": ["bar", ["abc", "def"]]}


# ---- more behaviour and error paths ---------------------------------------------------------

def test_add_replaces_existing_member():
    assert json_patch({"a": 1}, [{"op": "add", "path": "/a", "value": 2}]) == {"a": 2}


def test_add_at_array_end_index_appends():
    assert json_patch([1, 2], [{"op": "add", "path": "/2", "value": 3}]) == [1, 2, 3]


def test_add_past_array_end_fails():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch([1, 2], [{"op": "add", "path": "/3", "value": 3}])
    assert "out of bounds" in raised.value.detail


def test_add_with_leading_zero_index_fails():
    with pytest.raises(JsonPatchFailed):
        json_patch([1, 2], [{"op": "add", "path": "/01", "value": 3}])


def test_add_at_root_replaces_document():
    assert json_patch({"a": 1}, [{"op": "add", "path": "", "value": [1]}]) == [1]


def test_slash_in_key_is_addressed_with_tilde_one():
    assert json_patch({"metadata": {"labels": {}}},
                      [{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"}]) == \
        {"metadata": {"labels": {"app.kubernetes.io/name": "web"}}}


def test_remove_missing_member_fails():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({"a": 1}, [{"op": "remove", "path": "/b"}])
    assert "nonexistent key" in raised.value.detail


def test_remove_past_array_end_fails():
    with pytest.raises(JsonPatchFailed):
        json_patch({"a": [1]}, [{"op": "remove", "path": "/a/1"}])


def test_remove_with_append_marker_fails():
    with pytest.raises(JsonPatchFailed):
        json_patch({"a": [1]}, [{"op": "remove", "path": "/a/-"}])


def test_replace_missing_member_fails():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({"a": 1}, [{"op": "replace", "path": "/b", "value": 2}])
    assert raised.value.detail == 'replace operation does not apply: doc is missing key: "/b"'


def test_replace_array_element():
    assert json_patch({"a": [1, 2]}, [{"op": "replace", "path": "/a/0", "value": 9}]) == {"a": [9, 2]}


def test_move_from_missing_location_fails():
    with pytest.raises(JsonPatchFailed):
        json_patch({"a": 1}, [{"op": "move", "from": "/b", "path": "/c"}])


def test_move_into_own_child_fails():
    with pytest.raises(JsonPatchFailed):
        json_patch({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}])


def test_move_onto_itself_is_a_no_op():
    assert json_patch({"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}]) == {"a": 1}


def test_copy_makes_an_independent_value():
    result = json_patch({"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"},
                                            {"op": "add", "path": "/c/b/-", "value": 2}])
    assert result == {"a": {"b": [1]}, "c": {"b": [1, 2]}}


def test_copy_from_missing_location_fails():
    with pytest.raises(JsonPatchFailed):
        json_patch({"a": 1}, [{"op": "copy", "from": "/x", "path": "/c"}])


def test_test_does_not_confuse_true_with_one():
    with pytest.raises(JsonPatchFailed):
        json_patch({"a": True}, [{"op": "test", "path": "/a", "value": 1}])


def test_test_treats_integer_and_float_as_the_same_number():
    assert json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}


def test_test_compares_objects_and_arrays_deeply():
    document = {"a": {"x": [1, {"y": None}]}}
    assert json_patch(document, [{"op": "test", "path": "/a", "value": {"x": [1, {"y": None}]}}]) == document
    with pytest.raises(JsonPatchFailed):
        json_patch(document, [{"op": "test", "path": "/a", "value": {"x": [1, {"y": 0}]}}])


def test_test_of_missing_member_against_null_succeeds_like_upstream():
    assert json_patch({"a": 1}, [{"op": "test", "path": "/b", "value": None}]) == {"a": 1}


def test_test_of_missing_member_against_value_fails():
    with pytest.raises(JsonPatchFailed):
        json_patch({"a": 1}, [{"op": "test", "path": "/b", "value": 1}])


def test_test_guarding_resource_version_fails_on_mismatch():
    pod = {"metadata": {"name": "p", "resourceVersion": "7"}}
    with pytest.raises(JsonPatchFailed):
        json_patch(pod, [{"op": "test", "path": "/metadata/resourceVersion", "value": "6"},
                         {"op": "replace", "path": "/metadata/name", "value": "q"}])


def test_unknown_op_fails_with_upstream_wording():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({}, [{"op": "frobnicate", "path": "/a"}])
    assert raised.value.detail == "Unexpected kind: frobnicate"


def test_missing_op_is_unknown_kind():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({}, [{"path": "/a"}])
    assert raised.value.detail == "Unexpected kind: unknown"


def test_missing_value_fails():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({}, [{"op": "add", "path": "/a"}])
    assert '"value"' in raised.value.detail


def test_missing_path_fails():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({}, [{"op": "remove"}])
    assert '"path"' in raised.value.detail


def test_pointer_without_leading_slash_fails():
    with pytest.raises(JsonPatchFailed):
        json_patch({"a": 1}, [{"op": "remove", "path": "a"}])


def test_pointer_with_bad_tilde_escape_fails():
    with pytest.raises(JsonPatchFailed):
        parse_json_pointer("/a~2")


def test_failure_records_which_operation_failed():
    with pytest.raises(JsonPatchFailed) as raised:
        json_patch({"a": 1}, [{"op": "remove", "path": "/a"}, {"op": "remove", "path": "/a"}])
    assert raised.value.operation_index == 1


def test_patch_document_that_is_not_a_list_is_bad_request():
    with pytest.raises(errors.BadRequest) as raised:
        json_patch({}, {"op": "add", "path": "/a", "value": 1})
    assert raised.value.code == 400
    assert raised.value.message == "json: cannot unmarshal object into Go value of type jsonpatch.Patch"


def test_operation_that_is_not_an_object_is_bad_request():
    with pytest.raises(errors.BadRequest):
        json_patch({}, ["add"])


def test_json_patch_is_atomic_and_never_mutates_inputs():
    target = {"a": [1, 2], "b": {"c": 1}}
    operations = [{"op": "add", "path": "/b/d", "value": {"e": [1]}},
                  {"op": "remove", "path": "/a/0"},
                  {"op": "test", "path": "/a/0", "value": 99}]
    target_before, operations_before = copy.deepcopy(target), copy.deepcopy(operations)
    with pytest.raises(JsonPatchFailed):
        json_patch(target, operations)
    assert target == target_before and operations == operations_before


def test_json_patch_result_does_not_alias_operation_values():
    operations = [{"op": "add", "path": "/x", "value": {"list": [1]}}]
    result = json_patch({}, operations)
    result["x"]["list"].append(2)
    assert operations[0]["value"] == {"list": [1]}


def test_empty_operation_list_returns_equal_copy():
    target = {"a": {"b": 1}}
    result = json_patch(target, [])
    assert result == target and result is not target and result["a"] is not target["a"]


# ---- deep copy ----------------------------------------------------------------------------

def test_deep_copy_json_copies_nested_containers():
    value = {"a": [{"b": 1.5, "c": True, "d": None, "e": "s"}]}
    copied = deep_copy_json(value)
    assert copied == value
    copied["a"][0]["b"] = 2
    assert value["a"][0]["b"] == 1.5


def test_deep_copy_json_handles_what_orjson_refuses():
    value = {"huge": [2 ** 70], 1: "int key"}
    copied = deep_copy_json(value)
    assert copied == value
    assert copied["huge"] is not value["huge"]


def test_deep_copy_json_returns_scalars_as_they_are():
    assert deep_copy_json("s") == "s"
    assert deep_copy_json(None) is None
    assert deep_copy_json(3) == 3
