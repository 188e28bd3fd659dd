import json
import os
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecrm_collector.__main__ import cli
from ecrm_collector.settings import CollectorSettings
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


def _readme_commands(prefix: str) -> list[list[str]]:
    """The ``uv run ecrm-collector …`` commands the README shows, as argument lists."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    found = re.findall(r"`uv run ecrm-collector (" + prefix + r"[^`]*)`", readme)
    return [shlex.split(command) for command in dict.fromkeys(found)]


def test_the_readmes_sources_commands_work_as_written_in_the_development_layout(tmp_path, monkeypatch) -> None:
    """`make run` gives the collector ``.ecrm/sources.json``; the CLI finds the same file by itself."""
    monkeypatch.delenv("COLLECTOR_SOURCES_FILE", raising=False)
    monkeypatch.delenv("ECRM_DATA_DIR", raising=False)
    monkeypatch.setenv("ECRM_ENV", "development")
    commands = _readme_commands("sources add")
    assert commands, "the README shows how to add a source"
    for index, args in enumerate(commands):
        workdir = tmp_path / str(index)
        workdir.mkdir()
        monkeypatch.chdir(workdir)
        added = CliRunner().invoke(cli, args)
        assert added.exit_code == 0, added.output
        key = added.stdout.strip()
        assert SourceRegistry.load(Path(".ecrm/sources.json")).find(key) is not None
        listed = CliRunner().invoke(cli, ["sources", "list"])
        assert listed.exit_code == 0 and args[2] in listed.stdout
        # the dev stack's collector reads that very file
        assert CollectorSettings().collector_sources_file == Path(".ecrm/sources.json")


def test_the_sources_file_follows_ecrm_data_dir_in_development_and_is_required_in_production(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("COLLECTOR_SOURCES_FILE", raising=False)
    monkeypatch.setenv("ECRM_ENV", "development")
    monkeypatch.setenv("ECRM_DATA_DIR", str(tmp_path / "stack"))
    added = CliRunner().invoke(cli, ["sources", "add", "backend"])
    assert added.exit_code == 0, added.output
    assert (tmp_path / "stack" / "sources.json").exists()
    monkeypatch.setenv("ECRM_ENV", "production")
    monkeypatch.setenv("COLLECTOR_WRITE_KEYS", "wks_live")
    monkeypatch.setenv("TRACKING_SECRET", "a-real-secret")
    refused = CliRunner().invoke(cli, ["sources", "add", "backend-2"])
    assert refused.exit_code != 0 and "COLLECTOR_SOURCES_FILE" in refused.output
