import json
import logging

import pytest
import structlog

from ecrm_schemas.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_personal_data_and_secrets_never_reach_the_log(capsys) -> None:
    configure_logging("test", "INFO", "json")
    log = structlog.get_logger()
    log.info("sent", email="ada@example.com", write_key="wk_secret", detail="mail to bob@example.org", rule="welcome")
    logging.getLogger("stdlib").warning("login for carol@example.net failed")
    err = capsys.readouterr().err
    assert "ada@example.com" not in err and "wk_secret" not in err
    assert "bob@example.org" not in err and "carol@example.net" not in err
    lines = [json.loads(line) for line in err.strip().splitlines()]
    assert lines[0]["rule"] == "welcome" and lines[0]["service"] == "test"
    assert lines[0]["email"] == "[redacted]"
