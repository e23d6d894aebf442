"""Bad input, endpoint by endpoint: malformed JSON, wrong types, unknown
vhosts and users, names over 255 bytes, invalid regular expressions, an
oversized body, wrong credentials and missing tags, each checked against
RabbitMQ 3.10's status and `{"error", "reason"}` body. Same file against
RabbitMQ and Warren; where they differ on purpose the case says why.

A case's expectation is `(status, error, reason)`; `reason` None is not
checked, a str ending in "..." is a prefix. `DIFF(rabbitmq, warren, why)`
expects each broker's own answer."""

import pytest
import requests

from mgmt_helpers import MGMT_URL, unique

LONG = "x" * 300


class DIFF:
    def __init__(self, rabbitmq, warren, why):
        self.rabbitmq, self.warren, self.why = rabbitmq, warren, why


BAD = ("bad_request",)
NOT_FOUND_OBJ = (404, "Object Not Found", "Not Found")
VHOST_NOT_FOUND = (404, "not_found", "vhost_not_found")
RABBIT_CRASH = "RabbitMQ 3.10 crashes on this input (500, no body); Warren answers 400"
LONG_NAMES = ("RabbitMQ accepts these names over HTTP though AMQP (a shortstr) cannot "
              "carry them; Warren refuses them as it refuses a queue's")


def case(id, method, path, body, expect, auth=None):
    return pytest.param(method, path, body, expect, auth, id=id)


CASES = [
    # Malformed JSON.
    case("queue-not-json", "PUT", "/api/queues/%2F/{q}", "{not json", (400, *BAD, "not_json")),
    case("exchange-not-json", "PUT", "/api/exchanges/%2F/{x}", "{", (400, *BAD, "not_json")),
    case("user-array-body", "PUT", "/api/users/{u2}", "[1,2]", (400, *BAD, "not_json")),
    case("policy-not-json", "PUT", "/api/policies/%2F/{p}", "nul", (400, *BAD, "not_json")),
    case("permission-not-json", "PUT", "/api/permissions/{vh}/{user}", "{",
         (400, *BAD, "not_json")),
    case("definitions-not-json", "POST", "/api/definitions", "{",
         (400, *BAD, "failed_to_parse_json")),
    case("publish-not-json", "POST", "/api/exchanges/%2F/amq.direct/publish", "{",
         (400, *BAD, "not_json")),
    case("get-not-json", "POST", "/api/queues/%2F/{q}/get", "{", (400, *BAD, "not_json")),
    case("topic-permission-not-json", "PUT", "/api/topic-permissions/{vh}/{user}", "{",
         (400, *BAD, "not_json")),
    case("vhost-limit-not-json", "PUT", "/api/vhost-limits/{vh}/max-queues", "{",
         (400, *BAD, "not_json")),
    # Wrong types and values.
    case("durable-not-boolean", "PUT", "/api/queues/%2F/{q}", {"durable": "yes"},
         (400, *BAD, ["not_boolean", "yes"])),
    case("arguments-not-object", "PUT", "/api/queues/%2F/{q}", {"arguments": "x"},
         DIFF((500, None, None), (400, *BAD, "arguments must be an object"), RABBIT_CRASH)),
    # RabbitMQ says "unknown" for a type that happens to be an Erlang atom
    # ('nosuch'), "invalid" for others; Warren always says "invalid".
    case("invalid-exchange-type", "PUT", "/api/exchanges/%2F/{x}", {"type": "bogus"},
         (400, *BAD, "invalid exchange type 'bogus'")),
    case("password-not-string", "PUT", "/api/users/{u2}", {"password": 5, "tags": ""},
         DIFF((500, None, None), (400, *BAD, None), RABBIT_CRASH)),
    case("tags-missing", "PUT", "/api/users/{u2}", {"password": "p"},
         (400, *BAD, "tags_not_present")),
    case("configure-not-string", "PUT", "/api/permissions/{vh}/{user}",
         {"configure": 1, "write": ".*", "read": ".*"},
         DIFF((500, None, None), (400, *BAD, None), RABBIT_CRASH)),
    case("permission-key-missing", "PUT", "/api/permissions/{vh}/{user}",
         {"configure": ".*", "write": ".*"}, (400, *BAD, "[{key_missing,read}]")),
    case("policy-definition-not-object", "PUT", "/api/policies/%2F/{p}",
         {"pattern": ".*", "definition": "x"},
         DIFF((500, None, None), (400, *BAD, None), RABBIT_CRASH)),
    case("policy-bad-max-length", "PUT", "/api/policies/%2F/{p}",
         {"pattern": ".*", "definition": {"max-length": "x"}},
         (400, *BAD, 'Validation failed\n\n&lt;&lt;"x"&gt;&gt; is not a valid maximum length\n')),
    case("policy-negative-ttl", "PUT", "/api/policies/%2F/{p}",
         {"pattern": ".*", "definition": {"message-ttl": -5}},
         (400, *BAD, "Validation failed\n\n-5 is not a valid message TTL\n")),
    case("policy-bad-overflow", "PUT", "/api/policies/%2F/{p}",
         {"pattern": ".*", "definition": {"overflow": "x"}},
         (400, *BAD, 'Validation failed\n\n&lt;&lt;"x"&gt;&gt; is not a valid overflow value\n')),
    case("policy-unknown-key", "PUT", "/api/policies/%2F/{p}",
         {"pattern": ".*", "definition": {"nosuch": 5}},
         (400, *BAD, 'Validation failed\n\n[{&lt;&lt;"nosuch"&gt;&gt;,5}] are not recognised '
                     'policy settings\n')),
    case("policy-bad-priority", "PUT", "/api/policies/%2F/{p}",
         {"pattern": ".*", "definition": {"max-length": 1}, "priority": "x"},
         (400, *BAD, 'Validation failed\n\npriority should be a number, actually was '
                     '&lt;&lt;"x"&gt;&gt;\n')),
    case("policy-bad-apply-to", "PUT", "/api/policies/%2F/{p}",
         {"pattern": ".*", "definition": {"max-length": 1}, "apply-to": "nothing"},
         (400, *BAD, "Validation failed\n\napply-to 'nothing' unrecognised; should be "
                     "'queues', 'exchanges' or 'all'\n")),
    case("vhost-limit-not-number", "PUT", "/api/vhost-limits/{vh}/max-queues", {"value": [1]},
         (400, *BAD, "Validation failed\n\nmax-queues should be a number, actually was [1]\n")),
    case("vhost-limit-unknown", "PUT", "/api/vhost-limits/{vh}/max-foo", {"value": 1},
         (400, *BAD, 'Validation failed\n\nUnrecognised terms [{<<"max-foo">>,1}] in limits\n')),
    case("get-count-not-integer", "POST", "/api/queues/%2F/{q}/get",
         {"count": "x", "ackmode": "ack_requeue_true", "encoding": "auto"},
         (400, *BAD, ["not_integer", "x"])),
    case("get-bad-ackmode", "POST", "/api/queues/%2F/{q}/get",
         {"count": 1, "ackmode": "bogus", "encoding": "auto"},
         DIFF((500, None, None), (400, *BAD, None), RABBIT_CRASH)),
    case("publish-bad-encoding", "POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": "k", "payload": "x", "payload_encoding": "bogus", "properties": {}},
         (400, *BAD, ["unsupported_encoding", "bogus"])),
    case("publish-payload-not-string", "POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": "k", "payload": 5, "payload_encoding": "string", "properties": {}},
         (400, *BAD, "payload_not_string")),
    # Unknown vhosts, users and objects.
    case("get-unknown-vhost", "GET", "/api/vhosts/no-{vh}", None, NOT_FOUND_OBJ),
    case("list-queues-unknown-vhost", "GET", "/api/queues/no-{vh}", None, NOT_FOUND_OBJ),
    case("queue-in-unknown-vhost", "PUT", "/api/queues/no-{vh}/q", {}, VHOST_NOT_FOUND),
    case("exchange-in-unknown-vhost", "PUT", "/api/exchanges/no-{vh}/x", {"type": "direct"},
         VHOST_NOT_FOUND),
    case("policy-in-unknown-vhost", "PUT", "/api/policies/no-{vh}/p",
         {"pattern": ".*", "definition": {"max-length": 1}}, VHOST_NOT_FOUND),
    case("get-unknown-user", "GET", "/api/users/no-{user}", None, NOT_FOUND_OBJ),
    case("delete-unknown-user", "DELETE", "/api/users/no-{user}", None, NOT_FOUND_OBJ),
    case("permission-unknown-vhost", "PUT", "/api/permissions/no-{vh}/guest",
         {"configure": ".*", "write": ".*", "read": ".*"},
         (400, *BAD, "vhost_or_user_not_found")),
    case("permission-unknown-user", "PUT", "/api/permissions/%2F/no-{user}",
         {"configure": ".*", "write": ".*", "read": ".*"},
         (400, *BAD, "vhost_or_user_not_found")),
    case("get-permission-unknown-user", "GET", "/api/permissions/%2F/no-{user}", None,
         NOT_FOUND_OBJ),
    case("vhost-limit-unknown-vhost", "PUT", "/api/vhost-limits/no-{vh}/max-queues",
         {"value": 1}, VHOST_NOT_FOUND),
    case("user-limit-unknown-user", "PUT", "/api/user-limits/no-{user}/max-channels",
         {"value": 1}, (400, *BAD, ["no_such_user", "no-{user}"])),
    case("get-unknown-exchange", "GET", "/api/exchanges/%2F/no-{x}", None, NOT_FOUND_OBJ),
    case("delete-unknown-queue", "DELETE", "/api/queues/%2F/no-{q}", None, NOT_FOUND_OBJ),
    case("bind-unknown-exchange-and-queue", "POST", "/api/bindings/%2F/e/no-{x}/q/no-{q}",
         {"routing_key": "k"}, (404, "not_found", "no exchange 'no-{x}' in vhost '/'")),
    case("publish-unknown-exchange", "POST", "/api/exchanges/%2F/no-{x}/publish",
         {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {}},
         (400, *BAD, "404 NOT_FOUND - no exchange 'no-{x}' in vhost '/'")),
    case("definitions-unknown-vhost", "GET", "/api/definitions/no-{vh}", None,
         (400, *BAD, "vhost_not_found")),
    # Names over 255 bytes.
    case("long-queue-name", "PUT", "/api/queues/%2F/" + LONG, {},
         (400, *BAD, "queue should be less than 255 bytes, actually was 300\n")),
    case("long-exchange-name", "PUT", "/api/exchanges/%2F/" + LONG, {"type": "direct"},
         DIFF((201, None, None), (400, *BAD, "exchange should be less than 255 bytes, "
                                           "actually was 300\n"), LONG_NAMES)),
    case("long-vhost-name", "PUT", "/api/vhosts/" + LONG, None,
         DIFF((201, None, None), (400, *BAD, "vhost should be less than 255 bytes, "
                                           "actually was 300\n"), LONG_NAMES)),
    case("long-routing-key-publish", "POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": LONG, "payload": "x", "payload_encoding": "string", "properties": {}},
         DIFF((200, None, None), (400, *BAD, "routing_key should be less than 255 bytes, "
                                           "actually was 300\n"), LONG_NAMES)),
    # Invalid regular expressions.
    case("permission-invalid-regex", "PUT", "/api/permissions/{vh}/{user}",
         {"configure": "(", "write": ".*", "read": ".*"}, (400, *BAD, None)),
    case("topic-permission-invalid-regex", "PUT", "/api/topic-permissions/{vh}/{user}",
         {"exchange": "amq.topic", "write": "(", "read": ".*"}, (400, *BAD, None)),
    case("policy-invalid-pattern", "PUT", "/api/policies/%2F/{p}",
         {"pattern": "(", "definition": {"max-length": 1}},
         (400, *BAD, "Validation failed\n\npattern should be regular expression but is "
                     "invalid: ...")),
    case("operator-policy-invalid-pattern", "PUT", "/api/operator-policies/%2F/{p}",
         {"pattern": "(", "definition": {"max-length": 1}},
         (400, *BAD, "Validation failed\n\npattern should be regular expression but is "
                     "invalid: ...")),
    # Credentials and tags.
    case("wrong-password", "GET", "/api/overview", None,
         (401, "not_authorized", "Login failed"), auth=("guest", "wrong")),
    case("unknown-user-login", "GET", "/api/overview", None,
         (401, "not_authorized", "Login failed"), auth=("no-{user}", "x")),
    case("no-management-tag", "GET", "/api/overview", None,
         (401, "not_authorised", "Not management user"), auth=("{user}", "pw")),
    case("no-credentials", "GET", "/api/queues", None, (401, None, None), auth="none"),
    case("management-lists-users", "GET", "/api/users", None,
         (401, "not_authorised", "Not administrator user"), auth=("{mgmt}", "pw")),
    case("management-creates-vhost", "PUT", "/api/vhosts/no-{vh}", None,
         (401, "not_authorised", "Not administrator user"), auth=("{mgmt}", "pw")),
    case("management-reads-nodes", "GET", "/api/nodes", None,
         (401, "not_authorised", "Not monitor user"), auth=("{mgmt}", "pw")),
    case("management-sets-policy", "PUT", "/api/policies/%2F/{p}",
         {"pattern": ".*", "definition": {"max-length": 1}},
         (401, "not_authorised", "User not authorised to access object"), auth=("{mgmt}", "pw")),
    case("management-reads-parameters", "GET", "/api/parameters", None,
         (401, "not_authorised", "User not authorised to access object"), auth=("{mgmt}", "pw")),
    case("management-reads-global-parameters", "GET", "/api/global-parameters", None,
         (401, "not_authorised", "User not authorised to access object"), auth=("{mgmt}", "pw")),
    case("management-topic-permissions", "GET", "/api/topic-permissions", None,
         (401, "not_authorised", "Not administrator user"), auth=("{mgmt}", "pw")),
    case("management-sets-vhost-limit", "PUT", "/api/vhost-limits/{vh}/max-queues",
         {"value": 1}, (401, "not_authorised", "Not administrator user"), auth=("{mgmt}", "pw")),
    case("management-queues-of-foreign-vhost", "GET", "/api/queues/%2F", None,
         (401, "not_authorised", "User not authorised to access virtual host"),
         auth=("{mgmt}", "pw")),
]


@pytest.fixture(scope="module")
def names(api):
    n = {"vh": unique("bi-vh"), "user": unique("bi-user"), "mgmt": unique("bi-mgmt"),
         "u2": unique("bi-u2"), "q": unique("bi-q"), "x": unique("bi-x"), "p": unique("bi-p")}
    assert api.put(f"/api/vhosts/{n['vh']}").status_code == 201
    assert api.put(f"/api/users/{n['user']}", json={"password": "pw", "tags": ""}).status_code == 201
    assert api.put(f"/api/users/{n['mgmt']}",
                   json={"password": "pw", "tags": "management"}).status_code == 201
    assert api.put(f"/api/queues/%2F/{n['q']}", json={}).status_code == 201
    yield n
    for path in (f"/api/vhosts/{n['vh']}", f"/api/users/{n['user']}", f"/api/users/{n['mgmt']}",
                 f"/api/users/{n['u2']}", f"/api/queues/%2F/{n['q']}",
                 f"/api/exchanges/%2F/{n['x']}", f"/api/policies/%2F/{n['p']}",
                 f"/api/operator-policies/%2F/{n['p']}", "/api/exchanges/%2F/" + LONG,
                 "/api/vhosts/" + LONG):
        api.delete(path)


def fill(v, n):
    if isinstance(v, str):
        for k, name in n.items():
            v = v.replace("{" + k + "}", name)
        return v
    if isinstance(v, list):
        return [fill(x, n) for x in v]
    if isinstance(v, tuple):
        return tuple(fill(x, n) for x in v)
    return v


@pytest.mark.parametrize("method,path,body,expect,auth", CASES)
def test_bad_input_gets_rabbitmqs_answer(api, warren, names, method, path, body, expect, auth):
    if isinstance(expect, DIFF):
        expect = expect.warren if warren else expect.rabbitmq
    status, error, reason = fill(expect, names)
    kw = {"timeout": 30}
    if auth != "none":
        kw["auth"] = fill(auth, names) if auth else ("guest", "guest")
    if isinstance(body, str):
        kw["data"], kw["headers"] = body, {"content-type": "application/json"}
    elif body is not None:
        kw["json"] = body
    r = requests.request(method, MGMT_URL + fill(path, names), **kw)
    assert r.status_code == status, r.text
    if error is None:
        return
    got = r.json()
    assert got["error"] == error, got
    if isinstance(reason, str) and reason.endswith("..."):
        assert got["reason"].startswith(reason[:-3]), got
    elif reason is not None:
        assert got["reason"] == reason, got


def test_oversized_body_is_refused(api, warren, names):
    big = b'{"x":"' + b"a" * (21 * 1024 * 1024) + b'"}'
    r = requests.put(f"{MGMT_URL}/api/queues/%2F/{names['q']}-big", data=big,
                     auth=("guest", "guest"), headers={"content-type": "application/json"},
                     timeout=60)
    if warren:
        assert r.status_code == 413
        assert r.json() == {"error": "bad_request", "reason": "request body too large"}
    else:
        # RabbitMQ 3.10 fails such a request with a 500 and no body.
        assert r.status_code in (413, 500)
