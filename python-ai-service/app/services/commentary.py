"""Optional OpenAI commentary on the indicators and the model's signal."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import anyio

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


class CommentaryTimeoutError(CommentaryFailedError):
    """The OpenAI API did not answer within the deadline."""


class CommentaryCoolingDownError(RuntimeError):
    """Recent calls all failed: none is made until the cool-down is over."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"OpenAI failed repeatedly; not called for another {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class Breaker:
    """Open (calls refused) for ``cooldown_s`` after ``failures`` failed calls in a row; once it
    is over, one more failure opens it again and a success closes it."""

    def __init__(self, failures: int, cooldown_s: float) -> None:
        self._threshold, self._cooldown_s = failures, cooldown_s
        self._failures = 0
        self._open_until = 0.0

    def check(self) -> None:
        if (left := self._open_until - time.monotonic()) > 0:
            raise CommentaryCoolingDownError(left)

    def record(self, ok: bool) -> None:
        self._failures = 0 if ok else self._failures + 1
        if self._failures >= self._threshold:
            self._open_until = time.monotonic() + self._cooldown_s
            self._failures = self._threshold - 1


class Commentator:
    """Asks an OpenAI chat model to comment on one analysis, within a deadline."""

    def __init__(
        self, client: AsyncOpenAI, model: str, deadline_s: float, breaker: Breaker
    ) -> None:
        self._client = client
        self._model = model
        self._deadline_s = deadline_s
        self._breaker = breaker

    async def comment(
        self, latest: IndicatorSnapshot, signal: SignalResponse, question: str | None
    ) -> tuple[str, str]:
        """Return ``(commentary, model that wrote it)``."""
        self._breaker.check()
        try:
            with anyio.fail_after(self._deadline_s):
                result = await self._ask(latest, signal, question)
        except TimeoutError as exc:
            self._breaker.record(ok=False)
            raise CommentaryTimeoutError(
                f"OpenAI did not answer within {self._deadline_s:g} s"
            ) from exc
        except CommentaryFailedError:
            self._breaker.record(ok=False)
            raise
        self._breaker.record(ok=True)
        return result

    async def _ask(
        self, latest: IndicatorSnapshot, signal: SignalResponse, question: str | None
    ) -> tuple[str, str]:
        from openai import APIConnectionError, APIStatusError, APITimeoutError

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
        except APITimeoutError as exc:
            raise TimeoutError from exc
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
        # Each attempt's own timeout; OPENAI_DEADLINE_S bounds them together.
        timeout=settings.OPENAI_DEADLINE_S,
        max_retries=1,
        http_client=http_client,
    )
    breaker = Breaker(settings.OPENAI_BREAKER_FAILURES, settings.OPENAI_BREAKER_COOLDOWN_S)
    return Commentator(client, settings.OPENAI_MODEL, settings.OPENAI_DEADLINE_S, breaker)
