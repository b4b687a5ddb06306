from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.ml.indicators import MIN_CANDLES

# Every variable a test here sets; monkeypatch removes them again.
NAMES = ("IMAGE_VARIANT", "MAX_CANDLES", "LOG_JSON", "OPENAI_API_KEY", "MONGODB_URL")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*NAMES, "RATE_LIMIT", "MAX_BODY_BYTES", "LOG_LEVEL", "TRUSTED_PROXIES"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_without_environment(tmp_path: Path) -> None:
    settings = Settings(_env_file=tmp_path / "absent.env")  # type: ignore[call-arg]
    assert settings.IMAGE_VARIANT == "dev"
    assert settings.MONGODB_URL is None
    assert settings.OPENAI_API_KEY is None
    assert settings.LOG_JSON is False
    assert settings.TRUSTED_PROXIES == ()


def test_environment_overrides_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("IMAGE_VARIANT=from-file\nMAX_CANDLES=900\nLOG_JSON=true\n")
    monkeypatch.setenv("IMAGE_VARIANT", "ci")
    monkeypatch.setenv("UNRELATED", "x")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.IMAGE_VARIANT == "ci"
    assert settings.MAX_CANDLES == 900
    assert settings.LOG_JSON is True


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("MONGODB_URL", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.OPENAI_API_KEY is None
    assert settings.MONGODB_URL is None


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "sk-secret" not in repr(settings)
    assert settings.OPENAI_API_KEY is not None
    assert settings.OPENAI_API_KEY.get_secret_value() == "sk-secret"


def test_trusted_proxies_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7,::1")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.7/32"),
        ip_network("::1/128"),
    ) == settings.TRUSTED_PROXIES


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT", "lots per minute"),
        ("MAX_CANDLES", str(MIN_CANDLES - 1)),
        ("MAX_BODY_BYTES", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_JSON", "perhaps"),
        ("TRUSTED_PROXIES", "10.0.0.1/8"),
    ],
)
def test_invalid_values_fail_at_start_up(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings(_env_file=None)  # type: ignore[call-arg]
