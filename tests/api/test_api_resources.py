"""One shape per concept: every API resource is derived from the core's views through the one
documented vocabulary, so a field added to the core reaches the API or is declared internal."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest
from attrs import frozen

from attribution_webhooks.app.api.resources import DERIVED, INTERNAL, VOCABULARY, Webhook, derive
from attribution_webhooks.core.endpoint import Endpoint, EndpointStatus


@pytest.mark.parametrize("resource", list(DERIVED), ids=lambda cls: cls.__name__)
def test_every_core_field_is_shown_or_declared_internal_and_every_resource_field_has_a_source(
    resource: type,
) -> None:
    """Resource fields = the sources' fields under their API names, minus INTERNAL, plus the composed ones."""
    sources, composed = DERIVED[resource]
    shown = {
        VOCABULARY.get(source, {}).get(a.name, a.name)
        for source in sources
        for a in attrs.fields(source)
        if a.name not in INTERNAL[source]
    }
    assert {a.name for a in attrs.fields(resource)} == shown | composed
    assert not shown & composed


def test_vocabulary_renames_only_fields_that_exist() -> None:
    """The mapping cannot keep a name the core no longer has."""
    for source, names in VOCABULARY.items():
        assert set(names) <= {a.name for a in attrs.fields(source)}
        assert INTERNAL[source] <= {a.name for a in attrs.fields(source)}


def test_a_new_core_field_fails_loudly_until_it_is_shown_or_declared_internal() -> None:
    """derive() refuses a core view with a field the resource has no place for."""

    @frozen
    class GrownEndpoint(Endpoint):
        tier: str = "gold"

    now = datetime(2024, 1, 20, 15, tzinfo=UTC)
    grown = GrownEndpoint(
        status=EndpointStatus.ENABLED,
        endpoint_id="wh_1",
        url="https://a.example/",
        created_at=now,
        updated_at=now,
    )
    with pytest.raises((TypeError, KeyError)):
        derive(Webhook, grown)
