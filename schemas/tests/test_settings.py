"""Every service reads its environment alike: an empty variable means the setting's default."""

import pytest

from ecrm_aggregator.settings import AggregatorSettings
from ecrm_collector.settings import CollectorSettings
from ecrm_interaction.settings import InteractionSettings


@pytest.mark.parametrize("settings_class", [AggregatorSettings, CollectorSettings, InteractionSettings])
def test_an_empty_variable_means_the_default(settings_class, monkeypatch) -> None:
    # An env file's `KAFKA_SASL_USERNAME=` or `LOG_LEVEL=` must not override the default with "".
    monkeypatch.setenv("LOG_LEVEL", "")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "")
    monkeypatch.setenv("TRACKING_SECRET", "")
    settings = settings_class()
    assert settings.log_level == "INFO"
    assert settings.kafka_sasl_username is None


def test_an_empty_cluster_name_is_no_cluster(monkeypatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_CLUSTER", "")  # as in deploy/compose/.env.example
    assert AggregatorSettings().clickhouse_cluster is None


def test_caps_and_quiet_hours_are_turned_off_by_name(monkeypatch) -> None:
    monkeypatch.setenv("INTERACTION_FREQUENCY_CAPS", "off")
    monkeypatch.setenv("INTERACTION_QUIET_HOURS", "off")
    policy = InteractionSettings().policy()
    assert policy.caps == () and policy.quiet_start == policy.quiet_end
    monkeypatch.setenv("INTERACTION_QUIET_HOURS", "")
    assert InteractionSettings().interaction_quiet_hours == "21:00-08:00"
