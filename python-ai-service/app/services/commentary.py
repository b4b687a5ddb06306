"""Optional OpenAI commentary on the indicators and the model's signal."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from app.core.config import Settings
from app.schemas import IndicatorSnapshot, SignalResponse

if TYPE_CHECKING:
    import httpx
    from openai import AsyncOpenAI

_SYSTEM_PROMPT = (
    "You are a concise market analyst. Given technical indicators at the latest candle and a "
    "statistical model's up/down signal, explain in at most five sentences what they suggest and "
    "how much weight they deserve. Do not give financial advice."
)


class CommentaryUnavailableError(RuntimeError):
    """Commentary is not configured (no API key)."""


class CommentaryFailedError(RuntimeError):
    """The OpenAI API could not be reached or returned an error."""


class Commentator:
    """Asks an OpenAI chat model to comment on one analysis."""

    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model

    async def comment(
        self, latest: IndicatorSnapshot, signal: SignalResponse, question: str | None
    ) -> tuple[str, str]:
        """Return ``(commentary, model that wrote it)``."""
        from openai import APIConnectionError, APIStatusError

        facts = {
            "indicators_at_last_candle": latest.model_dump(),
            "signal": signal.model_dump(exclude={"features"}),
        }
        user = json.dumps(facts)
        if question:
            user += f"\n\nQuestion: {question}"
        try:
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=[
                    {"role": "system", "content": _SYSTEM_PROMPT},
                    {"role": "user", "content": user},
                ],
                temperature=0.2,
                max_tokens=300,
            )
        except APIStatusError as exc:
            raise CommentaryFailedError(f"OpenAI returned HTTP {exc.status_code}") from exc
        except APIConnectionError as exc:
            raise CommentaryFailedError(f"could not reach OpenAI: {exc}") from exc
        content = completion.choices[0].message.content if completion.choices else None
        if not content:
            raise CommentaryFailedError("OpenAI returned no commentary")
        return content.strip(), completion.model

    async def aclose(self) -> None:
        await self._client.close()


def build_commentator(
    settings: Settings, http_client: httpx.AsyncClient | None = None
) -> Commentator:
    """A commentator for the configured key; ``http_client`` lets tests supply a fake transport."""
    if settings.OPENAI_API_KEY is None:
        raise CommentaryUnavailableError(
            "OpenAI commentary is not configured: set OPENAI_API_KEY to enable /api/v1/analysis"
        )
    # Imported on first use: the openai package adds half a second to start-up.
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key=settings.OPENAI_API_KEY.get_secret_value(),
        base_url=settings.OPENAI_BASE_URL,
        timeout=settings.OPENAI_TIMEOUT_S,
        max_retries=1,
        http_client=http_client,
    )
    return Commentator(client, settings.OPENAI_MODEL)
