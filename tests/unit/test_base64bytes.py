"""Secret data and ConfigMap binaryData are []byte upstream: base64 wrapped over lines (a YAML
block scalar) is accepted, as Go's decoder skips line breaks, and stored unwrapped, as upstream
returns it after decoding and encoding again."""

from __future__ import annotations

import base64

import pytest

from pyk8s.api import base64bytes, errors, resources
from pyk8s.api.defaults import apply_defaults
from pyk8s.api.validation import validate_create

PEM = ("-----BEGIN CERTIFICATE-----\n" + "MIIC" * 40 + "\n-----END CERTIFICATE-----\n").encode()
ONE_LINE = base64.b64encode(PEM).decode()
WRAPPED = "\n".join(ONE_LINE[i:i + 64] for i in range(0, len(ONE_LINE), 64)) + "\n"


def test_wrapped_base64_decodes_like_gos_std_encoding():
    assert "\n" in WRAPPED.strip()
    assert base64bytes.decode(WRAPPED) == PEM
    assert base64bytes.decode(WRAPPED.replace("\n", "\r\n")) == PEM
    assert base64bytes.decode("YQ=\n=") == b"a"  # line breaks may split the padding too


@pytest.mark.parametrize("text", ["not base64!", "YQ", "YQ==YQ==", "Y Q==", "\tYQ=="])
def test_what_gos_decoder_refuses_is_refused(text):
    assert base64bytes.decode(text) is None
    assert base64bytes.canonical(text) == text  # left for validation to report


def test_canonical_form_is_the_reencoded_bytes():
    assert base64bytes.canonical(WRAPPED) == ONE_LINE
    assert base64bytes.canonical("YR==") == "YQ=="  # non-zero trailing bits, as Go (not strict) allows
    assert base64bytes.canonical("") == ""


def test_wrapped_secret_data_is_defaulted_to_one_line_and_valid():
    secret = {"metadata": {"name": "tls", "namespace": "default"}, "type": "kubernetes.io/tls",
              "data": {"tls.crt": WRAPPED, "tls.key": "a2V5\r\n"}}
    resource = resources.by_kind("", "Secret")
    apply_defaults(resource, secret)
    assert secret["data"] == {"tls.crt": ONE_LINE, "tls.key": "a2V5"}
    validate_create(resource, secret)


def test_wrapped_secret_data_is_valid_without_defaulting_first():
    secret = {"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque", "data": {"a": WRAPPED}}
    validate_create(resources.by_kind("", "Secret"), secret)


def test_secret_data_that_does_not_decode_is_still_invalid():
    secret = {"metadata": {"name": "s", "namespace": "default"}, "data": {"a": "YQ==\n!"}}
    resource = resources.by_kind("", "Secret")
    apply_defaults(resource, secret)
    with pytest.raises(errors.Invalid) as caught:
        validate_create(resource, secret)
    assert caught.value.causes == [errors.invalid("data[a]", "<secret contents redacted>", "must be base64 encoded")]


def test_wrapped_config_map_binary_data_is_stored_on_one_line():
    config_map = {"metadata": {"name": "bin", "namespace": "default"}, "data": {"text": "keep\nlines\n"},
                  "binaryData": {"blob": WRAPPED}}
    resource = resources.by_kind("", "ConfigMap")
    apply_defaults(resource, config_map)
    assert config_map["binaryData"] == {"blob": ONE_LINE}
    assert config_map["data"] == {"text": "keep\nlines\n"}  # text data is text, not base64
    validate_create(resource, config_map)
