"""The shared service base (``create_service_app``) in-process: what every reference service inherits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict

from reference_services.common import create_service_app, require_json


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    tags: dict[str, str] = {}


class Switch:
    healthy = True


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def app(switch: Switch) -> FastAPI:
    app = create_service_app(
        "demo", max_body_bytes=256, metrics=CollectorRegistry(), health=lambda: switch.healthy
    )

    @app.put("/items/{item_id}", dependencies=[Depends(require_json)])
    async def put_item(item_id: str, item: Item) -> Item:
        return item

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as http:
        yield http


@pytest.mark.behaviour("services.operations")
class TestServiceApp:
    """Errors are JSON, health follows the service's own check, metrics label route templates."""

    async def test_unexpected_exception_is_a_json_500(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        response = await client.get("/boom")

        assert response.status_code == 500
        assert response.json() == {
            "error": "internal_error",
            "message": "The service failed to handle the request.",
        }
        assert any("unhandled error in GET /boom" in r.getMessage() for r in caplog.records)

    async def test_health_follows_the_service_check(self, client: httpx.AsyncClient, switch: Switch) -> None:
        assert (await client.get("/health")).json() == {"status": "ok", "service": "demo"}
        switch.healthy = False
        response = await client.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "unhealthy", "service": "demo"}

    async def test_metrics_label_route_templates_and_unmatched(self, client: httpx.AsyncClient) -> None:
        await client.put("/items/a", json={"name": "x"})
        await client.put("/items/b", json={"name": 1})
        await client.get("/no/such/path")

        text = (await client.get("/metrics")).text

        assert 'http_requests_total{method="PUT",route="/items/{item_id}",status="200"} 1.0' in text
        assert 'http_requests_total{method="PUT",route="/items/{item_id}",status="422"} 1.0' in text
        assert 'http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0' in text
        assert 'service_info{service="demo",version="0.1.0"} 1.0' in text
