"""Pure parts of the kubelet: the CRI protobuf codec, CRI log records, $(VAR) expansion."""

from pyk8s.kubelet.cri import messages, proto
from pyk8s.kubelet.logs import records
from pyk8s.kubelet.envvars import expand
from pyk8s.kubelet.pods import Backoff


def test_container_config_round_trips_through_the_codec():
    config = {"metadata": {"name": "c", "attempt": 2}, "image": {"image": "busybox"}, "command": ["sh", "-c", "x"],
              "envs": [{"key": "A", "value": "1"}], "labels": {"b": "2", "a": "1"},
              "linux": {"resources": {"oom_score_adj": -997}, "security_context": {"run_as_user": {"value": 0}}}}
    decoded = proto.decode("ContainerConfig", proto.encode("ContainerConfig", config))
    assert decoded["metadata"] == {"name": "c", "attempt": 2}
    assert decoded["command"] == ["sh", "-c", "x"] and decoded["labels"] == {"a": "1", "b": "2"}
    assert decoded["linux"]["resources"]["oom_score_adj"] == -997
    assert decoded["linux"]["security_context"]["run_as_user"] == {"value": 0}


def test_absent_enum_decodes_as_its_zero_value():
    assert proto.decode("PodSandbox", proto.encode("PodSandbox", {"id": "x"}))["state"] == messages.SANDBOX_READY


def test_packed_repeated_ints_decode():
    encoded = proto.encode("PortForwardRequest", {"pod_sandbox_id": "s", "port": [80, 443]})
    assert proto.decode("PortForwardRequest", encoded)["port"] == [80, 443]


def test_partial_log_records_join_into_one_line():
    data = (b"2024-01-01T00:00:00.1Z stdout P hel\n2024-01-01T00:00:00.2Z stdout F lo\n"
            b"2024-01-01T00:00:00.3Z stderr F oops\n")
    assert records(data) == [("2024-01-01T00:00:00.1Z", b"hello\n"), ("2024-01-01T00:00:00.3Z", b"oops\n")]


def test_variable_expansion_keeps_unknown_references_and_unescapes_dollars():
    assert expand("$(A)-$(B)-$$(A)", {"A": "1"}) == "1-$(B)-$(A)"


def test_pull_image_request_carries_registry_credentials():
    request = {"image": {"image": "127.0.0.1:5000/team/app:1"}, "auth": {"username": "u", "password": "p"}}
    decoded = proto.decode("PullImageRequest", proto.encode("PullImageRequest", request))["auth"]
    assert {k: v for k, v in decoded.items() if v} == \
        {"username": "u", "password": "p"}


def test_crash_back_off_doubles_to_five_minutes():
    backoff = Backoff(10, 300)
    delays = [backoff.next("k", now=float(i)) for i in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
