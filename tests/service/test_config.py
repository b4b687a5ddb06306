from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.ml.indicators import MIN_CANDLES


def test_defaults_without_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({}, env_file=tmp_path / "absent.env")
    assert settings.IMAGE_VARIANT == "dev"
    assert settings.MONGODB_URL is None
    assert settings.OPENAI_API_KEY is None
    assert settings.LOG_JSON is False


def test_environment_overrides_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("IMAGE_VARIANT=from-file\nMAX_CANDLES=900\nLOG_JSON=true\n")
    settings = Settings.from_env({"IMAGE_VARIANT": "ci", "UNRELATED": "x"}, env_file=env_file)
    assert settings.IMAGE_VARIANT == "ci"
    assert settings.MAX_CANDLES == 900
    assert settings.LOG_JSON is True


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": "", "MONGODB_URL": ""}, env_file=None)
    assert settings.OPENAI_API_KEY is None
    assert settings.MONGODB_URL is None


def test_secrets_are_not_printed() -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-secret"}, env_file=None)
    assert "sk-secret" not in repr(settings)
    assert settings.OPENAI_API_KEY is not None
    assert settings.OPENAI_API_KEY.get_secret_value() == "sk-secret"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT", "lots per minute"),
        ("MAX_CANDLES", str(MIN_CANDLES - 1)),
        ("MAX_BODY_BYTES", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_JSON", "perhaps"),
    ],
)
def test_invalid_values_fail_at_start_up(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings.from_env({name: value}, env_file=None)
