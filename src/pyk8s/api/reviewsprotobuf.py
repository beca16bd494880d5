"""Protobuf tables of the access and identity reviews kubectl sends as protobuf (`kubectl
auth can-i`, `auth can-i --list`, `auth whoami`), in protobuf_schema.py's row format, with
upstream's field numbers (k8s.io/api authorization/v1 and authentication/v1 generated.proto).
`register()` adds them to the decoder's tables; authz.py calls it once at import.
"""

from __future__ import annotations

_AUTHZ = "authorization/v1"

MESSAGES = {
    f"{_AUTHZ}.ResourceAttributes": (
        (1, "namespace", 2, "string", None, ""), (2, "verb", 2, "string", None, ""),
        (3, "group", 2, "string", None, ""), (4, "version", 2, "string", None, ""),
        (5, "resource", 2, "string", None, ""), (6, "subresource", 2, "string", None, ""),
        (7, "name", 2, "string", None, "")),
    f"{_AUTHZ}.NonResourceAttributes": ((1, "path", 2, "string", None, ""), (2, "verb", 2, "string", None, "")),
    f"{_AUTHZ}.SelfSubjectAccessReviewSpec": (
        (1, "resourceAttributes", 2, "msg", f"{_AUTHZ}.ResourceAttributes", "p"),
        (2, "nonResourceAttributes", 2, "msg", f"{_AUTHZ}.NonResourceAttributes", "p")),
    f"{_AUTHZ}.SubjectAccessReviewSpec": (
        (1, "resourceAttributes", 2, "msg", f"{_AUTHZ}.ResourceAttributes", "p"),
        (2, "nonResourceAttributes", 2, "msg", f"{_AUTHZ}.NonResourceAttributes", "p"),
        (3, "user", 2, "string", None, ""), (4, "groups", 2, "string", None, "r"), (6, "uid", 2, "string", None, "")),
    f"{_AUTHZ}.SelfSubjectRulesReviewSpec": ((1, "namespace", 2, "string", None, ""),),
    # A request's status is empty or zero (the server fills it in).
    f"{_AUTHZ}.SubjectAccessReviewStatus": (
        (1, "allowed", 0, "bool", None, ""), (4, "denied", 0, "bool", None, ""),
        (2, "reason", 2, "string", None, ""), (3, "evaluationError", 2, "string", None, "")),
    f"{_AUTHZ}.SubjectRulesReviewStatus": ((3, "incomplete", 0, "bool", None, ""),
                                           (4, "evaluationError", 2, "string", None, "")),
    "authentication/v1.UserInfo": ((1, "username", 2, "string", None, ""), (2, "uid", 2, "string", None, ""),
                                   (3, "groups", 2, "string", None, "r")),
    "authentication/v1.SelfSubjectReviewStatus": ((1, "userInfo", 2, "msg", "authentication/v1.UserInfo", "s"),),
    f"{_AUTHZ}.SelfSubjectAccessReview": (
        (1, "metadata", 2, "msg", "meta/v1.ObjectMeta", "s"),
        (2, "spec", 2, "msg", f"{_AUTHZ}.SelfSubjectAccessReviewSpec", "s"),
        (3, "status", 2, "msg", f"{_AUTHZ}.SubjectAccessReviewStatus", "s")),
    f"{_AUTHZ}.SubjectAccessReview": (
        (1, "metadata", 2, "msg", "meta/v1.ObjectMeta", "s"),
        (2, "spec", 2, "msg", f"{_AUTHZ}.SubjectAccessReviewSpec", "s"),
        (3, "status", 2, "msg", f"{_AUTHZ}.SubjectAccessReviewStatus", "s")),
    f"{_AUTHZ}.SelfSubjectRulesReview": (
        (1, "metadata", 2, "msg", "meta/v1.ObjectMeta", "s"),
        (2, "spec", 2, "msg", f"{_AUTHZ}.SelfSubjectRulesReviewSpec", "s"),
        (3, "status", 2, "msg", f"{_AUTHZ}.SubjectRulesReviewStatus", "s")),
    "authentication/v1.SelfSubjectReview": ((1, "metadata", 2, "msg", "meta/v1.ObjectMeta", "s"),
                                            (2, "status", 2, "msg", "authentication/v1.SelfSubjectReviewStatus", "s")),
}

OBJECT_MESSAGES = {
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): f"{_AUTHZ}.SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): f"{_AUTHZ}.SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): f"{_AUTHZ}.SubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): f"{_AUTHZ}.SelfSubjectRulesReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "authentication/v1.SelfSubjectReview",
}


def register() -> None:
    from pyk8s.api import protobuf, protobuf_schema

    for name, rows in MESSAGES.items():
        protobuf_schema.MESSAGES.setdefault(name, rows)
        protobuf._FIELDS_BY_NUMBER.setdefault(name, {row[0]: row for row in rows})
    for key, name in OBJECT_MESSAGES.items():
        protobuf_schema.OBJECT_MESSAGES.setdefault(key, name)
