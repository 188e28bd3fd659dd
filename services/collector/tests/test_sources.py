import json
import os

import pytest

from ecrm_collector.sources import SourceDirectory, SourceError, SourceRegistry, hash_key


def test_keys_are_shown_once_and_stored_hashed(tmp_path) -> None:
    path = tmp_path / "sources.json"
    registry = SourceRegistry()
    source, key = registry.add("web", "browser", ("https://shop.example.com",))
    registry.save(path)
    assert key.startswith("wkb_") and key not in path.read_text()
    assert json.loads(path.read_text())["sources"][0]["key_hash"] == hash_key(key)
    loaded = SourceRegistry.load(path)
    assert loaded.find(key) == source
    assert loaded.find(key + "x") is None
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_revoked_keys_are_refused_and_names_are_unique() -> None:
    registry = SourceRegistry()
    _, key = registry.add("backend", "server")
    with pytest.raises(SourceError):
        registry.add("backend", "server")
    registry.revoke("backend")
    assert registry.find(key) is None
    with pytest.raises(SourceError):
        registry.revoke("nobody")


def test_browser_sources_only_from_their_origins() -> None:
    registry = SourceRegistry()
    browser, _ = registry.add("web", "browser", ("https://shop.example.com",))
    server, _ = registry.add("backend", "server")
    assert browser.allows_origin("https://shop.example.com")
    assert not browser.allows_origin("https://evil.example.net")
    assert browser.allows_origin(None)  # not a browser request
    assert server.allows_origin("https://evil.example.net")


def test_directory_picks_up_changes_to_the_file(tmp_path) -> None:
    path = tmp_path / "sources.json"
    directory = SourceDirectory(path, frozenset({"env-key"}), check_every_s=0)
    assert directory.find("env-key") is not None and directory.find("env-key").kind == "server"
    registry = SourceRegistry()
    _, key = registry.add("web", "browser")
    registry.save(path)
    assert directory.find(key) is not None
    registry.revoke("web")
    registry.save(path)
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 1))
    assert directory.find(key) is None
    assert directory.find("env-key") is not None
