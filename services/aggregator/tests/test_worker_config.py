import faust

from ecrm_aggregator.settings import AggregatorSettings
from ecrm_aggregator.worker import faust_broker_url, faust_credentials


def test_bootstrap_servers_become_a_faust_broker_url() -> None:
    assert faust_broker_url("k1:9092, k2:9092") == "kafka://k1:9092;k2:9092"


def test_kafka_security_settings_reach_faust() -> None:
    assert faust_credentials(AggregatorSettings()) is None
    sasl = faust_credentials(
        AggregatorSettings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="agg",
            kafka_sasl_password="pw",
        )
    )
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.username, sasl.password, sasl.ssl_context is not None) == ("agg", "pw", True)
    assert isinstance(faust_credentials(AggregatorSettings(kafka_security_protocol="SSL")), faust.SSLCredentials)
