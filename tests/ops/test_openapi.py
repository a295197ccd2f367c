"""The OpenAPI description is a valid OpenAPI 3.1 document and describes exactly the worker's routes."""

from __future__ import annotations

from openapi_spec_validator import validate

from streams.runtime.app import build_app
from streams.config import Settings
from streams.openapi import openapi_document


def test_document_is_valid_openapi():
    validate(openapi_document("0"))


def test_every_route_of_the_worker_is_described(tmp_path):
    app = build_app(Settings(data_dir=tmp_path / "worker"))
    routes = {route.resource.canonical for route in app.web.web_app.router.routes()}
    assert routes == set(openapi_document("0")["paths"])


def test_every_path_but_health_and_readiness_says_it_needs_the_token():
    document = openapi_document("0")
    assert set(document["components"]["securitySchemes"]) == {"token", "browser"}
    for path, item in document["paths"].items():
        for operation in item.values():
            if path in ("/health", "/ready"):
                assert operation["security"] == [] and "401" not in operation["responses"], path
            else:
                assert "security" not in operation and "401" in operation["responses"], path
