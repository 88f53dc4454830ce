"""The Alertmanager backend: alerts from Alertmanager's API v2, acknowledgements as silences.

An acknowledgement is a silence whose matchers equal the alert's labels exactly (isEqual true,
isRegex false), with createdBy the author, comment the comment and endsAt the expiry.
Extending updates that silence, and removing expires it. Every change goes through the
durable outbox first (see `lib.alerts.outbox`), so a change made while Alertmanager is down is
delivered once it is back.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from lib.alerts.model import Acknowledgement, AckResult, Alert, AlertState, fingerprint
from lib.alerts.outbox import Action, Outbox, OutboxEntry
from lib.errors import FetchError, FetchFailure
from lib.http import FetchPolicy, fetch

log = logging.getLogger(__name__)

# Retry delays of an undelivered entry: 2 s, doubling up to 5 minutes, with 20 % jitter.
RETRY_INITIAL_S = 2.0
RETRY_MAX_S = 300.0
# Longer than one delivery attempt can take, so a live lease is never taken over.
LEASE_S = 60.0
DELIVERER_POLL_S = 1.0
# Delivered and failed entries are kept this long for inspection, then deleted.
KEEP_DELIVERED_S = 30 * 86400.0
PRUNE_EVERY_S = 3600.0
# Alertmanager keeps endsAt to the millisecond; equal within this counts as the same expiry.
EXPIRY_TOLERANCE_S = 1.0


class AlertmanagerAPI:
    """The few calls of Alertmanager's API v2 that the app makes, at `base_url`."""

    def __init__(self, base_url: str, client: httpx.Client, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.read_policy = FetchPolicy(connect_timeout=min(2.0, timeout), read_timeout=timeout,
                                       deadline=timeout)
        # One attempt only, because a POST whose response was lost may still have created the
        # silence. The outbox, not the HTTP layer, decides how to try again.
        self.write_policy = FetchPolicy(connect_timeout=min(2.0, timeout), read_timeout=timeout,
                                        deadline=timeout, attempts=1)

    def alerts(self) -> list[dict[str, Any]]:
        """Return the active, silenced and inhibited alerts."""
        params = {"active": "true", "silenced": "true", "inhibited": "true",
                  "unprocessed": "true"}
        return list(self._json("GET", "/api/v2/alerts", params=params))

    def silences(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v2/silences"))

    def silence(self, silence_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v2/silence/{silence_id}"))

    def post_silence(self, body: Mapping[str, Any]) -> str:
        """Create a silence, or update the one whose `id` the body names; return its id."""
        reply = self._json("POST", "/api/v2/silences", body=body, policy=self.write_policy)
        return str(reply["silenceID"])

    def expire_silence(self, silence_id: str) -> None:
        """Expire a silence. A silence that Alertmanager reports as not found counts as expired."""
        url = f"{self.base_url}/api/v2/silence/{silence_id}"
        response = fetch(self.client, url, policy=self.write_policy, method="DELETE",
                         accept_statuses=(404, 500))
        if response.status_code != 200 and b"not found" not in response.body:
            raise FetchError(url, FetchFailure.HTTP_STATUS,
                             f"returned HTTP {response.status_code}",
                             status_code=response.status_code)

    def _json(self, method: str, path: str, params: dict[str, str] | None = None,
              body: object = None, policy: FetchPolicy | None = None) -> Any:
        url = f"{self.base_url}{path}"
        response = fetch(self.client, url, policy=policy or self.read_policy, method=method,
                         params=params, json_body=body)
        try:
            return json.loads(response.body)
        except ValueError as exc:
            raise FetchError(url, FetchFailure.PROTOCOL,
                             f"sent a body that is not JSON ({exc})") from exc


class AlertmanagerAlerts:
    """Alerts and acknowledgements through Alertmanager, with changes queued in `outbox`."""

    def __init__(self, api: AlertmanagerAPI, outbox: Outbox) -> None:
        self.api = api
        self.outbox = outbox
        self.label = f"Alertmanager ({api.base_url})"
        self.keeps_history = False
        self._retry = random.Random()

    # -- reading -------------------------------------------------------------------------------

    def active(self, now: float) -> list[Alert]:
        """Return Alertmanager's active alerts with their acknowledgements.

        A silenced alert shows the silence it is silenced by, preferring one whose matchers
        equal its labels. An outbox entry still waiting for delivery wins over both, marked
        pending, because it is the latest request.
        """
        raw_alerts = self.api.alerts()
        silences = {silence["id"]: silence for silence in self.api.silences()}
        pending: dict[str, list[OutboxEntry]] = {}
        for entry in self.outbox.pending():
            pending.setdefault(entry.alert_id, []).append(entry)
        return [_alert(raw, silences, pending.get(fingerprint(raw["labels"]), []), now)
                for raw in raw_alerts]

    def resolved(self, start: float, end: float) -> list[Alert]:
        """Return no alerts: Alertmanager's API v2 lists only alerts that have not resolved.

        NOTE: resolved alerts in this mode would need a store of past alerts, such as
        Prometheus's ALERTS series. The page states that they are not shown.
        """
        return []

    def pending_entries(self) -> list[OutboxEntry]:
        return self.outbox.pending()

    # -- acknowledgements ----------------------------------------------------------------------

    def acknowledge(self, alert: Alert, ack: Acknowledgement) -> AckResult:
        """Queue a silence for `alert` and try to deliver it now."""
        self.outbox.add(alert.id, Action.ACKNOWLEDGE, alert.labels, ack.acknowledged_by,
                        ack.comment, ack.acknowledged_at, ack.expires_at)
        return self.deliver_alert(alert.id, ack.acknowledged_at)

    def extend(self, alert: Alert, actor: str, expires_at: float, now: float) -> AckResult:
        """Queue a new endsAt for the alert's silence and try to deliver it now."""
        self.outbox.add(alert.id, Action.EXTEND, alert.labels, actor, "", now, expires_at)
        return self.deliver_alert(alert.id, now)

    def remove(self, alert: Alert, actor: str, now: float) -> AckResult:
        """Queue the expiry of the alert's silences and try to deliver it now."""
        self.outbox.add(alert.id, Action.REMOVE, alert.labels, actor, "", now, None)
        return self.deliver_alert(alert.id, now)

    # -- delivery ------------------------------------------------------------------------------

    def deliver_alert(self, alert_id: str, now: float) -> AckResult:
        """Deliver the pending entries of one alert in order; stop at the first failure."""
        for entry in self.outbox.pending(alert_id):
            _, error = self.deliver(entry.id, now)
            if error is not None:
                return AckResult(alert_id, delivered=False, error=error)
        left = self.outbox.pending(alert_id)
        if left:
            # Another process holds the lease and is delivering it.
            return AckResult(alert_id, delivered=False, error=left[-1].last_error)
        return AckResult(alert_id, delivered=True)

    def deliver_due(self, now: float) -> int:
        """Deliver every due entry, alert by alert in order; return how many were delivered."""
        delivered = 0
        blocked: set[str] = set()
        for entry in self.outbox.pending():
            if entry.alert_id in blocked or entry.next_attempt_at > now:
                blocked.add(entry.alert_id)
                continue
            sent, error = self.deliver(entry.id, now)
            delivered += sent
            if not sent:
                blocked.add(entry.alert_id)
        return delivered

    def deliver(self, entry_id: int, now: float) -> tuple[bool, str | None]:
        """Send one entry and return (delivered, failure).

        (False, None) means another process holds the entry's lease or has delivered it. After a
        failure the entry stays pending with its next attempt scheduled, unless Alertmanager
        rejected it as invalid.
        """
        entry = self.outbox.claim(entry_id, now, LEASE_S)
        if entry is None:
            return False, None
        try:
            silence_id = self._send(entry, now)
        except FetchError as error:
            return False, self._on_failure(entry, error, now)
        except _Undeliverable as error:
            self.outbox.mark_failed(entry.id, str(error))
            log.warning("outbox entry %d (%s of alert %s) cannot be delivered: %s",
                        entry.id, entry.action, entry.alert_id, error)
            return False, str(error)
        self.outbox.mark_delivered(entry.id, silence_id, time.time())
        log.info("outbox entry %d delivered: %s of alert %s by %r (silence %s, attempt %d)",
                 entry.id, entry.action, entry.alert_id, entry.created_by, silence_id,
                 entry.attempts + 1)
        return True, None

    def _on_failure(self, entry: OutboxEntry, error: FetchError, now: float) -> str:
        message = f"Alertmanager at {self.api.base_url} failed: {error.detail}"
        if error.status_code in (400, 422):
            self.outbox.mark_failed(entry.id, message)
            log.warning("outbox entry %d rejected by Alertmanager: %s", entry.id, error)
            return message
        delay = min(RETRY_MAX_S, RETRY_INITIAL_S * 2 ** min(entry.attempts, 16))
        delay *= 1 + 0.2 * self._retry.random()
        self.outbox.mark_retry(entry.id, message, now + delay)
        log.warning("outbox entry %d (%s of alert %s) not delivered, retry in %.0f s: %s",
                    entry.id, entry.action, entry.alert_id, delay, error)
        return message

    def _send(self, entry: OutboxEntry, now: float) -> str | None:
        if entry.action is Action.ACKNOWLEDGE:
            return self._send_acknowledge(entry)
        if entry.action is Action.EXTEND:
            return self._send_extend(entry)
        self._send_remove(entry, now)
        return None

    def _send_acknowledge(self, entry: OutboxEntry) -> str:
        assert entry.expires_at is not None
        if entry.attempts > 0:
            # An earlier attempt may have created the silence before its response was lost.
            existing = self._find_silence(entry.labels, entry.created_by, entry.comment,
                                          entry.expires_at)
            if existing is not None:
                log.info("outbox entry %d was delivered by an earlier attempt (silence %s)",
                         entry.id, existing["id"])
                return str(existing["id"])
        body = {
            "matchers": matchers(entry.labels),
            "startsAt": _iso(entry.requested_at),
            "endsAt": _iso(entry.expires_at),
            "createdBy": entry.created_by,
            "comment": entry.comment,
        }
        return self.api.post_silence(body)

    def _send_extend(self, entry: OutboxEntry) -> str:
        assert entry.expires_at is not None
        current = _latest(self._acknowledging_silences(entry.labels))
        if current is None:
            raise _Undeliverable("the alert has no acknowledgement in force to extend")
        if abs(_epoch(current["endsAt"]) - entry.expires_at) < EXPIRY_TOLERANCE_S:
            return str(current["id"])  # already extended, by an earlier attempt
        body = {key: current[key] for key in ("id", "matchers", "startsAt", "createdBy",
                                              "comment")}
        body["endsAt"] = _iso(entry.expires_at)
        return self.api.post_silence(body)

    def _send_remove(self, entry: OutboxEntry, now: float) -> None:
        for silence in self._acknowledging_silences(entry.labels):
            self.api.expire_silence(str(silence["id"]))

    def _acknowledging_silences(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        wanted = _matcher_key(matchers(labels))
        return [
            silence for silence in self.api.silences()
            if silence["status"]["state"] != "expired"
            and _matcher_key(silence["matchers"]) == wanted
        ]

    def _find_silence(self, labels: Mapping[str, str], created_by: str, comment: str,
                      expires_at: float) -> dict[str, Any] | None:
        for silence in self._acknowledging_silences(labels):
            if (silence["createdBy"] == created_by and silence["comment"] == comment
                    and abs(_epoch(silence["endsAt"]) - expires_at) < EXPIRY_TOLERANCE_S):
                return silence
        return None


class _Undeliverable(Exception):
    """The entry can never be delivered as it is; retrying would not help."""


class Deliverer:
    """A daemon thread that delivers due outbox entries every `poll_seconds`."""

    def __init__(self, backend: AlertmanagerAlerts, poll_seconds: float = DELIVERER_POLL_S) -> None:
        self.backend = backend
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="alert-outbox", daemon=True)
        self._thread.start()
        log.info("outbox deliverer started for %s", self.backend.api.base_url)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=LEASE_S)
            self._thread = None

    def _run(self) -> None:
        last_prune = 0.0
        while not self._stop.is_set():
            now = time.time()
            try:
                self.backend.deliver_due(now)
                if now - last_prune >= PRUNE_EVERY_S:
                    self.backend.outbox.prune(now - KEEP_DELIVERED_S)
                    last_prune = now
            except Exception:
                # The thread must outlive any bug in one round; the entries stay in the outbox.
                log.exception("outbox delivery round failed; retrying")
            self._stop.wait(self.poll_seconds)


def matchers(labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Return equality matchers for exactly `labels`, sorted by name."""
    return [{"name": name, "value": value, "isRegex": False, "isEqual": True}
            for name, value in sorted(labels.items())]


def _matcher_key(raw: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str, bool, bool], ...]:
    return tuple(sorted(
        (m["name"], m["value"], bool(m.get("isRegex", False)), bool(m.get("isEqual", True)))
        for m in raw
    ))


def _alert(raw: Mapping[str, Any], silences: Mapping[str, Mapping[str, Any]],
           pending: Sequence[OutboxEntry], now: float) -> Alert:
    labels = {str(k): str(v) for k, v in raw["labels"].items()}
    annotations = {str(k): str(v) for k, v in raw.get("annotations", {}).items()}
    ack = _acknowledgement(labels, raw["status"].get("silencedBy") or [], silences)
    if pending:
        ack = _pending_acknowledgement(pending, ack)
    if ack is not None and not ack.pending and ack.expires_at <= now:
        ack = None
    silenced = raw["status"]["state"] == "suppressed" and bool(raw["status"].get("silencedBy"))
    if pending:
        # The latest request decides, so a pending removal shows the alert as firing.
        silenced = ack is not None
    state = AlertState.SILENCED if silenced or ack is not None else AlertState.FIRING
    return Alert(
        id=fingerprint(labels),
        system=labels.get("system", labels.get("job", "")),
        name=labels.get("alertname", ""),
        severity=labels.get("severity", ""),
        summary=annotations.get("summary", annotations.get("description", "")),
        state=state,
        started_at=_epoch(raw["startsAt"]),
        labels=labels,
        acknowledgement=ack,
        annotations=annotations,
    )


def _acknowledgement(labels: Mapping[str, str], silenced_by: Sequence[str],
                     silences: Mapping[str, Mapping[str, Any]]) -> Acknowledgement | None:
    candidates = [silences[sid] for sid in silenced_by if sid in silences]
    exact = [s for s in candidates if _matcher_key(s["matchers"]) == _matcher_key(
        matchers(labels))]
    chosen = _latest(exact or candidates)
    if chosen is None:
        return None
    return Acknowledgement(
        acknowledged_by=str(chosen["createdBy"]),
        acknowledged_at=_epoch(chosen["startsAt"]),
        comment=str(chosen["comment"]),
        expires_at=_epoch(chosen["endsAt"]),
    )


def _pending_acknowledgement(pending: Sequence[OutboxEntry],
                             delivered: Acknowledgement | None) -> Acknowledgement | None:
    """Return the acknowledgement as it will be once the pending entries are delivered."""
    ack = delivered
    error = pending[-1].last_error
    for entry in pending:
        if entry.action is Action.ACKNOWLEDGE and entry.expires_at is not None:
            ack = Acknowledgement(entry.created_by, entry.requested_at, entry.comment,
                                  entry.expires_at, pending=True, delivery_error=error)
        elif entry.action is Action.EXTEND and ack is not None and entry.expires_at is not None:
            ack = Acknowledgement(ack.acknowledged_by, ack.acknowledged_at, ack.comment,
                                  entry.expires_at, pending=True, delivery_error=error)
        elif entry.action is Action.REMOVE:
            ack = None
    return ack


def _latest(silences: Sequence[Mapping[str, Any]]) -> Any:
    return max(silences, key=lambda s: _epoch(s["endsAt"]), default=None)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
