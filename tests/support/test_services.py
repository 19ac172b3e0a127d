"""The test-service helpers say what to install when a server is missing."""

from __future__ import annotations

import pytest

from tests.support import services


def test_missing_postgres_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("glob.glob", lambda _pattern: [])
    with pytest.raises(services.ServiceUnavailableError) as error:
        services.find_postgres_bin()
    assert "apt-get install -y postgresql" in str(error.value)
    assert "scripts/install_services.sh" in str(error.value)


def test_newest_postgres_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    found = ["/usr/lib/postgresql/9.6/bin/initdb", "/usr/lib/postgresql/15/bin/initdb"]
    monkeypatch.setattr("glob.glob", lambda _pattern: found)
    assert str(services.find_postgres_bin()) == "/usr/lib/postgresql/15/bin"


def test_free_port_is_bindable() -> None:
    assert 0 < services.free_port() < 65536
