"""A profile resolved against a stack: every name it uses checked, the addresses Locust sends to, the route
checked against the instance's own OpenAPI, a customer for orders, and the judged caller's configuration
(balancer, breaker, timeout, each instance's expected share) as the stack handed it to the caller.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.chaos import ChaosSession
from harness.errors import ConfigError, EnvironmentUnavailable
from harness.load._checks import CallerFacts
from harness.load._metrics import CallCounts, read_calls
from harness.load._plan import LocustPlan, build_plan
from harness.load._profile import LoadProfile, TargetKind
from harness.settings import CLIENT_DEFAULTS, InstanceConfig

WEIGHTED = "weighted_round_robin"


@dataclass
class Prepared:
    """What the run resolved against the stack: the plan, and the judged caller with its counters."""

    plan: LocustPlan
    facts: CallerFacts | None = None
    caller_url: str | None = None
    before: CallCounts | None = None


def check_names(profile: LoadProfile, path: Path, kinds: dict[str, str]) -> None:
    """Every instance and service the profile names runs in the stack (``kinds``: instance -> service);
    one ConfigError naming the key otherwise."""
    listing = ", ".join(sorted(kinds))
    named = [(f"faults.windows.{w.name}.fault.instance", w.fault.instance) for w in profile.faults.windows]
    if profile.target.instance is not None:
        named.append(("target.instance", profile.target.instance))
    if profile.checks.any:
        named.append(("checks.caller", profile.checks.caller))
    for key, name in named:
        if name not in kinds:
            raise ConfigError(f"{path}: {key}: no instance named {name!r}; known: {listing}")
    services = [("target.service", profile.target.service)]
    if profile.checks.any:
        services.append(("checks.service", profile.checks.service))
    known = sorted(set(kinds.values()))
    for key, service in services:
        if service is not None and service not in known:
            raise ConfigError(f"{path}: {key}: no service named {service!r}; known: {', '.join(known)}")


def _address(session: ChaosSession, name: str, through_proxy: bool) -> str:
    proxied = session.stack.proxies.get(name)
    return f"http://{proxied}" if through_proxy and proxied else session.stack.url(name)


def prepare(profile: LoadProfile, path: Path, session: ChaosSession) -> Prepared:
    """Hosts, the route, a customer, the caller's configuration and its counters before the load."""
    target = profile.target
    stack = session.stack
    customer: str | None = None
    match target.kind:
        case TargetKind.ORDERS:
            hosts = [_address(session, session.first("orchestrator").name, target.through_proxy)]
            customer = _customer(session.first("users").url)
        case TargetKind.USER_READS:
            hosts = [_address(session, p.name, target.through_proxy) for p in stack.instances("users")]
            customer = _customer(session.first("users").url)
        case TargetKind.HTTP:
            names = (
                [target.instance]
                if target.instance
                else [p.name for p in stack.instances(target.service or "")]
            )
            if not names:
                raise ConfigError(f"{path}: target.service: the stack runs no {target.service} instance")
            _check_route(path, stack.url(names[0]), names[0], target.method, target.path)
            hosts = [_address(session, name, target.through_proxy) for name in names]
    events = str(stack.event_log("locust"))
    stage = Prepared(build_plan(profile, hosts, customer=customer, events=events))
    if profile.checks.any:
        stage.facts = _caller_facts(profile, path, session)
        stage.caller_url = stack.url(profile.checks.caller)
        stage.before = read_calls(stage.caller_url, profile.checks.service)
    return stage


def _customer(users_url: str) -> str:
    """A customer with credit that no run of orders can exhaust."""
    customer = f"load-{uuid.uuid4().hex[:10]}"
    body = {"id": customer, "name": "Load Customer", "email": f"{customer}@example.test", "credit": 10**12}
    try:
        answer = httpx.post(f"{users_url}/users", json=body, timeout=10.0, trust_env=False)
    except httpx.HTTPError as exc:
        raise EnvironmentUnavailable(f"creating a customer for the load failed: {exc}") from exc
    if answer.status_code != 201:
        raise EnvironmentUnavailable(f"creating a customer for the load failed: HTTP {answer.status_code}")
    return customer


def _check_route(path: Path, url: str, name: str, method: str, route: str) -> None:
    """The route is one the instance documents (its OpenAPI), for that method; ConfigError otherwise."""
    try:
        spec = httpx.get(f"{url}/openapi.json", timeout=10.0, trust_env=False).json()
        routes: dict[str, dict[str, object]] = spec["paths"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise EnvironmentUnavailable(f"cannot read the routes of {name} ({url}/openapi.json): {exc}") from exc
    bare = route.split("?", 1)[0]
    for template, operations in routes.items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, bare):
            if method.lower() in operations:
                return
            allowed = ", ".join(sorted(m.upper() for m in operations))
            raise ConfigError(f"{path}: target.method: {name} answers {template} to {allowed}, not {method}")
    raise ConfigError(
        f"{path}: target.path: {route} is not a route of {name}; it has {', '.join(sorted(routes))}"
    )


def _caller_facts(profile: LoadProfile, path: Path, session: ChaosSession) -> CallerFacts:
    """The judged caller's balancer, breaker and timeout, and each instance's expected share, as the stack
    handed them to the processes (their ``config/<instance>.json``)."""
    caller, service = profile.checks.caller, profile.checks.service
    kind = session.instance(caller).kind
    configs = session.workdir / "config"
    own = configs / f"{caller}.json"
    settings = InstanceConfig.read(own).clients.get(service) if own.exists() else None
    settings = settings or CLIENT_DEFAULTS.get(kind, {}).get(service)
    if settings is None:
        raise ConfigError(f"{path}: checks.caller: {caller} does not call {service}")
    config = settings.to_config()
    instances = tuple(sorted(p.name for p in session.stack.instances(service)))
    declared = profile.checks.shares.weights if profile.checks.shares is not None else None
    if declared is not None:
        if set(declared) != set(instances):
            raise ConfigError(
                f"{path}: checks.shares.weights: name every instance of {service}: {', '.join(instances)}"
            )
        weights = dict(declared)
    elif config.balancer == WEIGHTED:
        weights = {name: _weight(configs / f"{name}.json") for name in instances}
    else:
        weights = dict.fromkeys(instances, 1)
    total = sum(weights.values())
    return CallerFacts(
        caller=caller,
        service=service,
        instances=instances,
        expected={name: weights[name] / total for name in instances},
        breaker=config.breaker,
        attempt_timeout=config.attempt_timeout,
    )


def _weight(config: Path) -> int:
    weight = InstanceConfig.read(config).weight if config.exists() else None
    return weight or 1
