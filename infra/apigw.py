"""What API Gateway (REST, Lambda proxy integration) does between a client and a function, as data.

Read from infra/template.yaml: the routes (every `Type: Api` event), the API's binary media types, its
TOKEN authorizer and its gateway responses. Used by the sample events of `python -m infra invoke` and
by the Kubernetes HTTP front (infra/front.py), so both build the event a deployed function receives on
AWS. Each AWS behaviour copied here says where it comes from:

- the proxy event (version 1.0) and the TOKEN authorizer event: "Set up Lambda proxy integrations in
  API Gateway" and "Input to an API Gateway Lambda authorizer" in the API Gateway Developer Guide;
- binary bodies: a request body is base64-encoded when its Content-Type matches a binary media type; a
  response with `isBase64Encoded` is decoded only when the request's first Accept type matches one
  ("Content type conversions in API Gateway");
- routing: a static path segment wins over a `{param}`, which wins over `{proxy+}`;
- the authorizer's policy: an explicit Deny wins, then an Allow whose resource pattern matches the
  method ARN, else 403; context values reach the integration as strings;
- gateway responses: the template's `GatewayResponses` (status and `application/json` template) over
  AWS's defaults (`{"message": ...}`).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.template_model import functions, parameter_defaults

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# API Gateway's hard limits for REST APIs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S = 29.0
DEFAULT_REAUTHORIZE_S = 300

# AWS's default gateway responses: (status, message).
_DEFAULT_RESPONSES: dict[str, tuple[int, str]] = {
    "UNAUTHORIZED": (401, "Unauthorized"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource with an explicit deny"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "AUTHORIZER_FAILURE": (500, "Internal server error"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "Internal server error"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "INTEGRATION_FAILURE": (504, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "THROTTLED": (429, "Too Many Requests"),
    # A function error or an invalid proxy response from the function.
    "BAD_GATEWAY": (502, "Internal server error"),
}


@dataclass(frozen=True)
class Route:
    """One `Type: Api` event: METHOD path -> function, with or without the authorizer."""

    function: str  # logical id
    event: str  # logical id of the event
    method: str  # upper case; ANY matches every method
    path: str  # the resource path, e.g. /videos/{id}
    authorized: bool
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = []
        for segment in self.path.strip("/").split("/") if self.path.strip("/") else []:
            if segment.endswith("+}"):
                parts.append(f"(?P<{_group(segment[1:-2])}>.+)")
            elif segment.startswith("{") and segment.endswith("}"):
                parts.append(f"(?P<{_group(segment[1:-1])}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        object.__setattr__(self, "_pattern", re.compile("^/" + "/".join(parts) + "$"))

    @property
    def parameters(self) -> list[str]:
        return re.findall(r"\{([^}+]+)\+?\}", self.path)

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: more static segments first, then plain parameters before greedy ones."""
        segments = [s for s in self.path.strip("/").split("/") if s]
        static = sum(1 for s in segments if not s.startswith("{"))
        greedy = sum(1 for s in segments if s.endswith("+}"))
        return (-static, greedy, -len(segments))

    def match(self, path: str) -> dict[str, str] | None:
        found = self._pattern.match(path)
        if found is None:
            return None
        names = self.parameters
        return {name: found.group(_group(name)) for name in names}


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


@dataclass(frozen=True)
class TokenAuthorizer:
    function: str  # logical id of the authorizer function
    header: str
    validation: re.Pattern[str] | None
    ttl_s: int


@dataclass(frozen=True)
class RestApi:
    """The parts of the template's REST API a gateway needs."""

    stage: str
    routes: list[Route]
    binary_types: list[str]
    authorizer: TokenAuthorizer | None
    gateway_responses: dict[str, dict[str, Any]]
    api_id: str = "vid2mp3"

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for METHOD path and its path parameters; None is API Gateway's 'no route'."""
        method = method.upper()
        for route in sorted(self.routes, key=lambda r: r.specificity):
            if route.method not in (method, "ANY"):
                continue
            params = route.match(path)
            if params is not None:
                return route, params
        return None

    def method_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/{method.upper()}{path}"

    def gateway_response(self, kind: str, message: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body API Gateway answers for `kind`, honouring the template's override."""
        status, default_message = _DEFAULT_RESPONSES[kind]
        family = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        override = self.gateway_responses.get(kind) or self.gateway_responses.get(family) or {}
        status = int(override.get("StatusCode", status))
        template = (override.get("ResponseTemplates") or {}).get("application/json")
        body = template if isinstance(template, str) else json.dumps({"message": message or default_message})
        return status, {"Content-Type": "application/json"}, body.encode()


def _resolve(value: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return params.get(value["Ref"], value["Ref"])
    return value


def rest_api(template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None) -> RestApi:
    """The template's REST API: one `AWS::Serverless::Api` (or SAM's implicit one), its routes and auth."""
    params = {**parameter_defaults(dict(template)), **(parameters or {})}
    resources: dict[str, Any] = template.get("Resources") or {}
    apis = {k: v for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Api"}
    if len(apis) > 1:
        raise ValueError(f"more than one AWS::Serverless::Api in the template: {', '.join(apis)}")
    api: dict[str, Any] = next(iter(apis.values())) if apis else {}
    api_props: dict[str, Any] = api.get("Properties") or {}
    auth = api_props.get("Auth") or {}
    default_authorizer = auth.get("DefaultAuthorizer")
    authorizer: TokenAuthorizer | None = None
    if default_authorizer:
        conf = (auth.get("Authorizers") or {})[default_authorizer]
        if conf.get("FunctionPayloadType", "TOKEN") != "TOKEN":
            raise ValueError(f"{default_authorizer}: only TOKEN authorizers are supported")
        arn = conf.get("FunctionArn")
        function = arn["Fn::GetAtt"][0] if isinstance(arn, dict) and "Fn::GetAtt" in arn else str(arn)
        identity = conf.get("Identity") or {}
        expression = identity.get("ValidationExpression")
        authorizer = TokenAuthorizer(
            function=function,
            header=str(identity.get("Header", "Authorization")),
            validation=re.compile(str(expression)) if expression else None,
            ttl_s=int(identity.get("ReauthorizeEvery", DEFAULT_REAUTHORIZE_S)),
        )
    routes: list[Route] = []
    for logical_id, resource in functions(dict(template)).items():
        for event_id, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "Api":
                continue
            props = event.get("Properties") or {}
            route_auth = (props.get("Auth") or {}).get("Authorizer", default_authorizer)
            routes.append(Route(function=logical_id, event=event_id, method=str(props["Method"]).upper(),
                                path=str(props["Path"]), authorized=bool(route_auth) and route_auth != "NONE"))
    return RestApi(
        stage=str(_resolve(api_props.get("StageName", "Prod"), params)),
        routes=routes,
        binary_types=[str(t) for t in api_props.get("BinaryMediaTypes") or []],
        authorizer=authorizer,
        gateway_responses=dict(api_props.get("GatewayResponses") or {}),
    )


# --------------------------------------------------------------------------------------------------
# Content types


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def matches_binary(content_type: str | None, binary_types: Iterable[str]) -> bool:
    """API Gateway's test of a media type against BinaryMediaTypes (`*/*` and `type/*` wildcards)."""
    media = _media_type(content_type)
    if not media:
        return False
    return any(fnmatch.fnmatchcase(media, pattern.lower()) for pattern in binary_types)


def first_accept(accept: str | None) -> str:
    return _media_type((accept or "").split(",", 1)[0])


# --------------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class HttpRequest:
    """A client's request as the gateway saw it."""

    method: str
    path: str  # without the stage
    headers: Sequence[tuple[str, str]] = ()
    query: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[-1] if found else None


def _multi(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value  # API Gateway keeps the last value in the single-value map
        multi.setdefault(key, []).append(value)
    return single, multi


def proxy_event(
    api: RestApi,
    route: Route,
    path_parameters: Mapping[str, str],
    request: HttpRequest,
    *,
    authorizer_context: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The REST API Lambda proxy event (format 1.0) for `request` on `route`."""
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    headers, multi_headers = _multi(request.headers)
    query, multi_query = _multi(request.query)
    body: str | None = None
    encoded = False
    if request.body:
        if matches_binary(request.header("content-type"), api.binary_types):
            body, encoded = base64.b64encode(request.body).decode("ascii"), True
        else:
            body = request.body.decode("utf-8", errors="replace")
    context: dict[str, Any] = {
        "resourceId": "r" + uuid.uuid5(uuid.NAMESPACE_URL, route.path).hex[:6],
        "resourcePath": route.path,
        "httpMethod": request.method.upper(),
        "extendedRequestId": request_id,
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "path": f"/{api.stage}{request.path}",
        "accountId": ACCOUNT_ID,
        "protocol": "HTTP/1.1",
        "stage": api.stage,
        "domainPrefix": api.api_id,
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "requestId": request_id,
        "identity": {
            "cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None, "caller": None,
            "sourceIp": request.source_ip, "principalOrgId": None, "accessKey": None,
            "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None, "userArn": None,
            "userAgent": request.header("user-agent"), "user": None,
        },
        "domainName": f"{api.api_id}.execute-api.{REGION}.amazonaws.com",
        "apiId": api.api_id,
    }
    if authorizer_context is not None:
        context["authorizer"] = dict(authorizer_context)
    return {
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method.upper(),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": encoded,
    }


def token_event(api: RestApi, request: HttpRequest, token: str) -> dict[str, Any]:
    """The TOKEN authorizer's input for `request`."""
    return {"type": "TOKEN", "authorizationToken": token,
            "methodArn": api.method_arn(request.method, request.path)}


# --------------------------------------------------------------------------------------------------
# The authorizer's answer and the function's answer


class AuthorizerRejected(Exception):
    """The authorizer's decision or failure, as the gateway response kind to answer with."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _arn_matches(pattern: str, arn: str) -> bool:
    # IAM resource patterns: `*` any run of characters, `?` any one character.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def authorizer_decision(response: Any, method_arn: str) -> dict[str, Any]:
    """The integration's `requestContext.authorizer` from an authorizer's response, or AuthorizerRejected."""
    if not isinstance(response, dict) or "policyDocument" not in response or "principalId" not in response:
        raise AuthorizerRejected("AUTHORIZER_CONFIGURATION_ERROR")
    statements = (response.get("policyDocument") or {}).get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(_arn_matches(a, "execute-api:Invoke") for a in actions):
            continue
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(_arn_matches(r, method_arn) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            raise AuthorizerRejected("ACCESS_DENIED")
        allowed = allowed or statement.get("Effect") == "Allow"
    if not allowed:
        raise AuthorizerRejected("ACCESS_DENIED")
    context = {k: _context_value(v) for k, v in (response.get("context") or {}).items()}
    return {**context, "principalId": str(response["principalId"]), "integrationLatency": 0}


def _context_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_response(api: RestApi, result: Any, request: HttpRequest) -> HttpResponse:
    """The client's response from a proxy integration's result (BAD_GATEWAY when it is not one)."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        status, headers, body = api.gateway_response("BAD_GATEWAY")
        return HttpResponse(status, list(headers.items()), body)
    pairs: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    for name, value in (result.get("headers") or {}).items():
        if name not in multi:
            pairs.append((str(name), str(value)))
    for name, values in multi.items():
        pairs.extend((str(name), str(v)) for v in values or [])
    raw = result.get("body")
    body = raw.encode("utf-8") if isinstance(raw, str) else b""
    if result.get("isBase64Encoded") and raw:
        accept = first_accept(request.header("accept"))
        if accept and matches_binary(accept, api.binary_types):
            body = base64.b64decode(raw)
    return HttpResponse(int(result["statusCode"]), pairs, body)
