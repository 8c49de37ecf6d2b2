"""AsyncAPI's own parser (@asyncapi/parser, pinned in tools/asyncapi) accepts every document
under docs/asyncapi: what the AsyncAPI CLI, Generator, Modelina and Studio read first."""

from __future__ import annotations

import json

import pytest

from services.asyncapi import DOCS_DIR, SERVICES
from tests.unit.docs.node_tools import TOOLS, run_node


@pytest.fixture(scope="module")
def parser_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The parser's lines for each document, and for a copy of offer_service.json with the
    OpenAPI-style discriminator object pydantic writes (the documents before issue 25); one
    run of the parser for all of them."""
    broken = tmp_path_factory.mktemp("asyncapi") / "openapi_discriminator.json"
    spec = json.loads((DOCS_DIR / "offer_service.json").read_text(encoding="utf-8"))
    terms = spec["components"]["schemas"]["OfferExtended"]["properties"]["terms"]
    terms["discriminator"] = {"propertyName": terms["discriminator"]}
    broken.write_text(json.dumps(spec), encoding="utf-8")
    paths = [DOCS_DIR / f"{service}.json" for service in SERVICES] + [broken]
    result = run_node(TOOLS / "validate.cjs", *paths)
    assert "error(s)" in result.stdout, f"the parser did not run:\n{result.stderr}"
    return {
        path.name: "\n".join(
            line for line in result.stdout.splitlines() if line.startswith(f"{path}: ")
        )
        for path in paths
    }


@pytest.mark.parametrize("service", SERVICES)
def test_asyncapis_parser_accepts_the_document_with_no_error(
    parser_output: dict[str, str], service: str
) -> None:
    lines = parser_output[f"{service}.json"]
    refused = " 0 error(s)," not in lines or "NOT a valid AsyncAPI document" in lines
    assert not refused, f"AsyncAPI's parser refuses docs/asyncapi/{service}.json:\n{lines}"


def test_the_parser_refuses_an_openapi_style_discriminator(parser_output: dict[str, str]) -> None:
    lines = parser_output["openapi_discriminator.json"]
    assert '"discriminator" property type must be string' in lines, lines
    assert "NOT a valid AsyncAPI document" in lines, lines
