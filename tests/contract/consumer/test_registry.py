"""users, notifications and orchestrator -> registry: what every instance does through RegistryClient.

Each service registers itself (built by ``registration(settings, service)``, as ``joined`` does), heartbeats,
re-registers when the registry forgot it, deregisters on shutdown, and looks up the services it calls.
Every write carries the registry's token in ``X-Registry-Token`` (the value here is an example: the
verification replays the provider's own token in its place); lookups carry none.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pact import Pact, match
from pact.interaction import HttpInteraction
from pact.match.matcher import AbstractMatcher

from harness.discovery import RegistryClient
from reference_services.common import ServiceSettings, registration

from .._support import NAME_REGEX, NewPact, error_body

PROVIDER = "registry"
JSON = "application/json"
NUMBER_REGEX = r"^\d+(\.\d+)?$"
TOKEN = "example-registry-token-0123456789"
TOKEN_HEADER = "X-Registry-Token"


def token() -> AbstractMatcher[object]:
    """Any token the registry accepts: printable ASCII without spaces, 16 to 512 characters."""
    return match.regex(TOKEN, regex=r"^[!-~]{16,512}$")


@dataclass(frozen=True)
class Consumer:
    """A service as a registry client: its instance, and the services it looks up."""

    service: str
    port: int
    looks_up: tuple[str, ...]

    @property
    def instance_id(self) -> str:
        return f"{self.service}-1"

    def settings(self) -> ServiceSettings:
        return ServiceSettings(
            instance_id=self.instance_id, advertise_host="127.0.0.1", advertise_port=self.port, ttl=5.0
        )


SERVICES = (
    Consumer("users", 8101, ("notifications",)),
    Consumer("notifications", 8201, ()),
    Consumer("orchestrator", 8301, ("users", "notifications")),
)
CONSUMERS = [pytest.param(consumer, id=consumer.service) for consumer in SERVICES]
LOOKUPS = [
    pytest.param(consumer, target, id=f"{consumer.service}-looks-up-{target}")
    for consumer in SERVICES
    for target in consumer.looks_up
]


def instance_view(instance_id: str, service: str) -> dict[str, object]:
    """The part of an instance the client reads (InstanceView)."""
    return {
        "instance_id": match.str(instance_id),
        "service": match.str(service),
        "address": match.str("127.0.0.1"),
        "port": match.int(8000),
        "weight": match.int(1),
        "status": match.regex("passing", regex="^(passing|critical)$"),
    }


def registered(consumer: Consumer) -> dict[str, object]:
    return {"instance_id": consumer.instance_id, "service": consumer.service, "port": consumer.port}


def register_request(pact: Pact, description: str, consumer: Consumer) -> HttpInteraction:
    reg = registration(consumer.settings(), consumer.service)
    assert reg.health_url is not None
    assert reg.ttl is not None
    return (
        pact.upon_receiving(description)
        .with_request(
            "PUT", match.regex(f"/v1/instances/{reg.instance_id}", regex=f"^/v1/instances/{NAME_REGEX}$")
        )
        .with_header(TOKEN_HEADER, token())
        .with_body(
            {
                "service": consumer.service,
                "address": match.str(reg.address),
                "port": match.int(reg.port),
                "health_url": match.regex(reg.health_url, regex=r"^https?://[^/\s]+/health$"),
                "metadata": {},
                "weight": match.int(reg.weight),
                "ttl": match.number(reg.ttl),
            },
            content_type=JSON,
        )
    )


def instance_path(consumer: Consumer, suffix: str = "") -> AbstractMatcher[object]:
    example = f"/v1/instances/{consumer.instance_id}{suffix}"
    return match.regex(example, regex=f"^/v1/instances/{NAME_REGEX}{suffix}$")


@pytest.mark.behaviour("registry.registration")
@pytest.mark.behaviour(
    by_id={
        "users": "contract.users-registry",
        "notifications": "contract.notifications-registry",
        "orchestrator": "contract.orchestrator-registry",
    }
)
@pytest.mark.parametrize("consumer", CONSUMERS)
class TestRegistration:
    async def test_registers_a_new_instance(self, new_pact: NewPact, consumer: Consumer) -> None:
        """201 with the instance as registered."""
        pact = new_pact(consumer.service, PROVIDER)
        (
            register_request(pact, "a registration of a new instance", consumer)
            .given("no such instance", {"instance_id": consumer.instance_id})
            .will_respond_with(201)
            .with_body(instance_view(consumer.instance_id, consumer.service), content_type=JSON)
        )
        with pact.serve(addr="127.0.0.1") as server:
            async with RegistryClient(str(server.url), token=TOKEN) as registry:
                view = await registry.register(registration(consumer.settings(), consumer.service))
        assert view.instance_id == consumer.instance_id

    async def test_registering_again_refreshes(self, new_pact: NewPact, consumer: Consumer) -> None:
        """Registration is idempotent per instance id: 200 for a known instance."""
        pact = new_pact(consumer.service, PROVIDER)
        (
            register_request(pact, "a registration of a known instance", consumer)
            .given("a registered instance", registered(consumer))
            .will_respond_with(200)
            .with_body(instance_view(consumer.instance_id, consumer.service), content_type=JSON)
        )
        with pact.serve(addr="127.0.0.1") as server:
            async with RegistryClient(str(server.url), token=TOKEN) as registry:
                view = await registry.register(registration(consumer.settings(), consumer.service))
        assert view.service == consumer.service

    async def test_heartbeat(self, new_pact: NewPact, consumer: Consumer) -> None:
        """200 with the TTL: the instance lives on."""
        pact = new_pact(consumer.service, PROVIDER)
        (
            pact.upon_receiving("a heartbeat")
            .given("a registered instance", registered(consumer))
            .with_request("PUT", instance_path(consumer, "/heartbeat"))
            .with_header(TOKEN_HEADER, token())
            .will_respond_with(200)
            .with_body(
                {
                    "instance_id": match.str(consumer.instance_id),
                    "ttl": match.number(5.0),
                    "expires_in": match.number(4.998),
                },
                content_type=JSON,
            )
        )
        with pact.serve(addr="127.0.0.1") as server:
            async with RegistryClient(str(server.url), token=TOKEN) as registry:
                assert await registry.heartbeat(consumer.instance_id) is True

    async def test_heartbeat_of_a_forgotten_instance(self, new_pact: NewPact, consumer: Consumer) -> None:
        """404 not_found: the registry forgot the instance, which must register again."""
        pact = new_pact(consumer.service, PROVIDER)
        (
            pact.upon_receiving("a heartbeat from an instance the registry forgot")
            .given("no such instance", {"instance_id": consumer.instance_id})
            .with_request("PUT", instance_path(consumer, "/heartbeat"))
            .with_header(TOKEN_HEADER, token())
            .will_respond_with(404)
            .with_body(error_body("not_found"), content_type=JSON)
        )
        with pact.serve(addr="127.0.0.1") as server:
            async with RegistryClient(str(server.url), token=TOKEN) as registry:
                assert await registry.heartbeat(consumer.instance_id) is False

    async def test_deregisters(self, new_pact: NewPact, consumer: Consumer) -> None:
        """204 on shutdown: the instance is gone at once rather than after its TTL."""
        pact = new_pact(consumer.service, PROVIDER)
        (
            pact.upon_receiving("a deregistration")
            .given("a registered instance", registered(consumer))
            .with_request("DELETE", instance_path(consumer))
            .with_header(TOKEN_HEADER, token())
            .will_respond_with(204)
        )
        with pact.serve(addr="127.0.0.1") as server:
            async with RegistryClient(str(server.url), token=TOKEN) as registry:
                assert await registry.deregister(consumer.instance_id) is True


def instance_list(service: str) -> dict[str, object]:
    return {
        "service": match.str(service),
        "index": match.int(1717236000000),
        "instances": match.each_like(instance_view(f"{service}-9", service)),
    }


def healthy_instance(service: str) -> dict[str, object]:
    return {"service": service, "instance_id": f"{service}-9", "address": "127.0.0.1", "port": 8000}


@pytest.mark.behaviour(
    by_id={
        "users-looks-up-notifications": "contract.users-registry",
        "orchestrator-looks-up-users": "contract.orchestrator-registry",
        "orchestrator-looks-up-notifications": "contract.orchestrator-registry",
    }
)
@pytest.mark.parametrize(("consumer", "target"), LOOKUPS)
class TestLookup:
    async def test_lookup(self, new_pact: NewPact, consumer: Consumer, target: str) -> None:
        """The healthy instances of a service, and the change index to watch from."""
        pact = new_pact(consumer.service, PROVIDER)
        (
            pact.upon_receiving(f"a lookup of {target} instances")
            .given("a service with a healthy instance", healthy_instance(target))
            .with_request("GET", f"/v1/services/{target}/instances")
            .with_query_parameter("healthy", "true")
            .will_respond_with(200)
            .with_body(instance_list(target), content_type=JSON)
        )
        with pact.serve(addr="127.0.0.1") as server:
            async with RegistryClient(str(server.url)) as registry:
                answer = await registry.instances(target)
        assert [i.service for i in answer.instances] == [target]

    @pytest.mark.behaviour("registry.blocking_queries")
    async def test_blocking_lookup(self, new_pact: NewPact, consumer: Consumer, target: str) -> None:
        """With ``index`` and ``wait`` the answer waits for a change: the lookup cache's watch."""
        pact = new_pact(consumer.service, PROVIDER)
        (
            pact.upon_receiving(f"a blocking lookup of {target} instances")
            .given("a service with a healthy instance", healthy_instance(target))
            .with_request("GET", f"/v1/services/{target}/instances")
            .with_query_parameter("healthy", "true")
            .with_query_parameter("index", match.regex("41", regex=r"^\d+$"))
            .with_query_parameter("wait", match.regex("30", regex=NUMBER_REGEX))
            .will_respond_with(200)
            .with_body(instance_list(target), content_type=JSON)
        )
        with pact.serve(addr="127.0.0.1") as server:
            async with RegistryClient(str(server.url)) as registry:
                answer = await registry.instances(target, index=41, wait=30.0)
        assert answer.index > 0
