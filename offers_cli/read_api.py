"""The services' read APIs (SPEC §6) over plain ``urllib``: the CLI needs a handful of GETs,
not an HTTP client dependency."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Final

from offers_cli.config import Config
from offers_cli.errors import CliError, NotFound, Refused, Unavailable, UsageError
from services.runtime.secrets import redact

MAX_PAGES: Final = 20
PAGE: Final = 200  # the services' maximum page size


class ReadApi:
    def __init__(self, config: Config, *, timeout: float = 5, actor: str | None = None) -> None:
        """``actor``: on whose behalf the reads are made (X-Actor-Id), OFFERS_ACTOR by
        default; the services show each resource to its parties only."""
        self._actor = actor or config.actor
        self._offer = config.offer_service
        self._messaging = config.messaging_service
        self._notification = config.notification_service
        self._timeout = timeout
        self._names = {
            self._offer: "offer_service",
            self._messaging: "messaging_service",
            self._notification: "notification_service",
        }

    def check(self) -> None:
        """Every service answers ``GET /health`` with 200, or ``Unavailable`` says which not."""
        for base in (self._offer, self._messaging, self._notification):
            try:
                self._get(base, "/health")
            except CliError as error:
                if isinstance(error, Unavailable):
                    raise
                raise Unavailable(f"{base} is not healthy: {error}") from None

    # --- offer_service ----------------------------------------------------------------------

    def offer(self, offer_id: str) -> dict[str, Any]:
        return _object(self._get(self._offer, f"/offers/{_quote(offer_id)}"))

    def offers(self, **filters: str | None) -> list[dict[str, Any]]:
        return self._all(self._offer, "/offers", filters)

    def contract(self, contract_id: str) -> dict[str, Any]:
        return _object(self._get(self._offer, f"/contracts/{_quote(contract_id)}"))

    def contracts(self, **filters: str | None) -> list[dict[str, Any]]:
        return self._all(self._offer, "/contracts", filters)

    def members(self, talent_cloud_id: str) -> list[dict[str, Any]]:
        return self._all(self._offer, f"/talent-clouds/{_quote(talent_cloud_id)}/members", {})

    # --- messaging_service ------------------------------------------------------------------

    def thread(self, offer_id: str) -> dict[str, Any]:
        """The whole thread, oldest message first (pages come newest first: put them back)."""
        path = f"/threads/{_quote(offer_id)}/messages"
        thread = _object(self._get(self._messaging, path, {"limit": str(PAGE)}))
        items, cursor = list(thread["items"]), thread.get("next_cursor")
        for _ in range(MAX_PAGES):
            if not cursor:
                break
            older = _object(
                self._get(self._messaging, path, {"limit": str(PAGE), "before": cursor})
            )
            items[:0] = older["items"]
            cursor = older.get("next_cursor")
        return {**thread, "items": items}

    # --- notification_service ---------------------------------------------------------------

    def inbox(self, recipient_id: str, *, unread_only: bool = False) -> list[dict[str, Any]]:
        filters = {"recipient_id": recipient_id, "unread_only": "true" if unread_only else None}
        return self._all(self._notification, "/notifications", filters)

    def preferences(self, recipient_id: str) -> dict[str, Any]:
        return _object(
            self._get(
                self._notification, "/notifications/preferences", {"recipient_id": recipient_id}
            )
        )

    # --- HTTP -------------------------------------------------------------------------------

    def _all(self, base: str, path: str, filters: dict[str, str | None]) -> list[dict[str, Any]]:
        """Every item of a list resource, following ``next_cursor`` (bounded)."""
        params = {k: v for k, v in filters.items() if v is not None} | {"limit": str(PAGE)}
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = _object(self._get(base, path, params))
            items += page["items"]
            if not page.get("next_cursor"):
                break
            params["cursor"] = page["next_cursor"]
        return items

    def _get(self, base: str, path: str, params: dict[str, str] | None = None) -> Any:
        url = base + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        headers = {"X-Actor-Id": self._actor} if self._actor else {}
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            message = _error_message(error)
            if error.code == 404:
                raise NotFound(message) from None
            if error.code == 401:  # no reader: say how to name one
                raise UsageError(f"{message} (pass --as <actor_id> or set OFFERS_ACTOR)") from None
            if error.code == 403:  # a list of someone else's
                raise Refused(message) from None
            raise CliError(
                f"{self._names.get(base, base)} at {redact(base)} answered {error.code}: {message}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise Unavailable(
                f"cannot reach {self._names.get(base, base)} at {redact(base)} ({reason}) — is "
                "`make run` going?"
            ) from None
        except ValueError:
            raise CliError(f"{url} did not answer JSON") from None


def _quote(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CliError(f"the read API answered {type(value).__name__}, not an object")
    return value


def _error_message(error: urllib.error.HTTPError) -> str:
    """The ``message`` of the services' JSON error body, else the HTTP reason."""
    try:
        body = json.loads(error.read())
    except (ValueError, OSError):
        return str(error.reason)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    return str(error.reason)
