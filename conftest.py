import os

import pytest

pytest_plugins = ["ecrm_embedded.testing"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long reliability suite (``@pytest.mark.reliability``) runs only under
    ``make test-reliability`` (ECRM_RELIABILITY=1); ``make test`` reports it as skipped."""
    if os.environ.get("ECRM_RELIABILITY") == "1":
        return
    skip = pytest.mark.skip(reason="long reliability suite: run by `make test-reliability`")
    for item in items:
        if item.get_closest_marker("reliability"):
            item.add_marker(skip)
