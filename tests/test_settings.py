"""Each service refuses development defaults when ECRM_ENV=production."""

import pytest
from pydantic import ValidationError

from ecrm_aggregator.settings import AggregatorSettings
from ecrm_collector.settings import CollectorSettings
from ecrm_interaction.settings import InteractionSettings


def test_development_defaults_are_accepted_in_development() -> None:
    CollectorSettings()
    AggregatorSettings()
    InteractionSettings()


@pytest.mark.parametrize(
    ("settings", "overrides", "problem"),
    [
        (CollectorSettings, {}, "COLLECTOR_WRITE_KEYS"),
        (CollectorSettings, {"collector_write_keys": "wk_live"}, "TRACKING_SECRET"),
        (AggregatorSettings, {"clickhouse_url": "chdb:///tmp/x"}, "CLICKHOUSE_URL"),
        (InteractionSettings, {"interaction_api_token": "s3cret-token"}, "DATABASE_URL"),
        (InteractionSettings, {"database_url": "postgresql+psycopg://db/ecrm"}, "INTERACTION_API_TOKEN"),
    ],
)
def test_production_refuses_unsafe_defaults(settings, overrides, problem) -> None:
    with pytest.raises(ValidationError, match=problem):
        settings(ecrm_env="production", **overrides)


def test_production_accepts_real_settings(monkeypatch) -> None:
    monkeypatch.setenv("ECRM_ENV", "production")
    monkeypatch.setenv("COLLECTOR_WRITE_KEYS", "wk_live_1,wk_live_2")
    monkeypatch.setenv("TRACKING_SECRET", "a-long-random-secret")
    assert CollectorSettings().write_keys() == {"wk_live_1", "wk_live_2"}
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "u")
    assert CollectorSettings().kafka_client_config()["sasl.password"] == "pw"
