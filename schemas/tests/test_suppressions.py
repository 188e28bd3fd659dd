import pytest
from pydantic import ValidationError

from ecrm_schemas.suppressions import Suppression, SuppressionList, identity_digest


def test_the_list_holds_digests_that_do_not_reveal_the_identity() -> None:
    digest = identity_digest("alice@example.com")
    assert len(digest) == 64 and "alice" not in digest
    assert digest == identity_digest("alice@example.com") != identity_digest("alice@example.org")
    record = Suppression(identity_digest=digest)
    assert b"alice" not in record.encode()
    assert Suppression.model_validate_json(record.encode()).identity_digest == digest
    with pytest.raises(ValidationError):
        Suppression(identity_digest="alice@example.com")


def test_matching_identities_and_raw_events() -> None:
    suppressions = SuppressionList()
    assert not suppressions.matches("u1") and not suppressions.matches_raw({"userId": "u1"})
    suppressions.suppress(["u1"])
    suppressions.add(identity_digest("a1"))
    assert len(suppressions) == 2
    assert suppressions.matches(None, "", "u1") and suppressions.matches("a1")
    assert not suppressions.matches("u2", None)
    assert suppressions.matches_raw({"userId": "u2", "anonymousId": "a1"})
    assert suppressions.matches_raw({"type": "alias", "previousId": "u1", "userId": "u9"})
    assert not suppressions.matches_raw({"userId": 1, "anonymousId": ["u1"]})
    assert not suppressions.matches_raw(["u1"])
