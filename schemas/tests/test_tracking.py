import pytest

from ecrm_schemas.tracking import InvalidToken, TrackingToken, sign, verify


def test_tokens_round_trip_and_refuse_tampering() -> None:
    token = TrackingToken(email_id="s-1", customer="u1", rule_id="welcome", url="https://shop.example.com/x")
    value = sign(token, "secret")
    assert verify(value, "secret") == token
    with pytest.raises(InvalidToken):
        verify(value, "other-secret")
    with pytest.raises(InvalidToken):
        verify(value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1], "secret")
    forged = sign(token.model_copy(update={"url": "https://evil.example.net"}), "not-our-secret")
    with pytest.raises(InvalidToken):
        verify(forged, "secret")
