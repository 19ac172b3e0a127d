"""Sending completion webhooks from the store's outbox, on threads of their own.

The outbox row is written with the job (NewJob.callback_url), so delivery survives a
crash: whichever process runs a sender next claims what is due. Each attempt is claimed in
the store first (one attempt counted); a 2xx answer marks it delivered, anything else (an
error status, a redirect, a timeout, a refused address) schedules the next attempt after
1 s, 2 s, 4 s, ... until `max_attempts`, then the delivery is abandoned. Redirects are
never followed. Workers never wait on any of this: they only write the job's end.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, timedelta

from forgesyte.faults import transient_fault
from forgesyte.jobs.changes import JobChange
from forgesyte.jobs.models import FINISHED_STATUSES, JobStatus, utcnow
from forgesyte.jobs.store import WebhookDelivery, WebhookOutbox, WebhookOutcome
from forgesyte.webhooks.guard import CallbackTarget, UnsafeCallbackUrl, check_callback_url
from forgesyte.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

FIRST_RETRY_DELAY_S = 1.0  # seconds; doubled after every failed attempt
MAX_RETRY_DELAY_S = 600.0  # seconds: the longest wait between two attempts
POLL_INTERVAL_S = 1.0  # seconds between looks at the outbox when nothing wakes the sender
SENDERS = 4  # deliveries in flight at once per process
USER_AGENT = "ForgeSyte-Webhooks"


def event_body(delivery: WebhookDelivery) -> bytes:
    """The JSON body of a delivery: the same bytes on every retry of one event."""
    updated_at = delivery.updated_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    payload: dict[str, object] = {
        "event_id": str(delivery.event_id),
        "job_id": str(delivery.job_id),
        "status": delivery.status.value,
    }
    if delivery.status is JobStatus.FAILED and delivery.error_message:
        payload["error_message"] = delivery.error_message
    payload["updated_at"] = updated_at
    return json.dumps(payload, separators=(",", ":")).encode()


def retry_delay_s(attempt: int) -> float:
    """How long to wait after failed attempt number `attempt` (1, 2, ...): 1 s, 2 s, 4 s..."""
    delay: float = FIRST_RETRY_DELAY_S * 2.0 ** (attempt - 1)
    return min(MAX_RETRY_DELAY_S, delay)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the address the guard checked, with the URL's host as the TLS server name."""

    def __init__(self, target: CallbackTarget, timeout_s: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s)
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the address the guard checked, with the URL's host in the Host header."""

    def __init__(self, target: CallbackTarget, timeout_s: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(target: CallbackTarget, headers: dict[str, str], body: bytes, timeout_s: float) -> int:
    """POST body to a checked target; its HTTP status (a redirect is returned, not followed)."""
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(target, timeout_s)
    else:
        connection = _PinnedHTTPConnection(target, timeout_s)
    try:
        connection.request(
            "POST", target.path, body=body, headers={**headers, "User-Agent": USER_AGENT}
        )
        response = connection.getresponse()
        response.read(64 * 1024)  # drain a little; the answer's body means nothing to us
        return response.status
    finally:
        connection.close()


@dataclass(eq=False)
class WebhookSender:
    """Claims due deliveries from the store and sends them on a few threads.

    Listening to the store (`on_change`) wakes it the moment a job of this process ends;
    otherwise it looks at the outbox every POLL_INTERVAL_S, which also picks up retries and
    the jobs other processes finished.
    """

    store: WebhookOutbox
    _: KW_ONLY
    secret: str = field(repr=False)
    max_attempts: int = 8
    allow_private: bool = False
    timeout_s: float = 5.0
    poll_interval_s: float = POLL_INTERVAL_S
    _due: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _in_flight: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(SENDERS), init=False, repr=False
    )

    def on_change(self, change: JobChange) -> None:
        """A store listener: a job that ended may have a delivery due now."""
        if change.status in FINISHED_STATUSES:
            self._due.set()

    def run(self, stop_event: threading.Event) -> None:
        """Send due deliveries until stop_event is set."""
        claim_lease_s = self.timeout_s * 3 + 5.0  # an attempt in flight is not due again
        outage_told = False
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook") as pool:
            while not stop_event.is_set():
                self._due.clear()
                free = 0
                while self._in_flight.acquire(blocking=False):
                    free += 1
                claimed: list[WebhookDelivery] = []
                try:
                    if free:
                        claimed = self.store.claim_webhooks(free, claim_lease_s)
                    outage_told = False
                except Exception as exc:
                    outage_told = self._tell_read_failure(exc, outage_told)
                for _ in range(free - len(claimed)):
                    self._in_flight.release()
                for delivery in claimed:
                    pool.submit(self._deliver_and_release, delivery)
                if len(claimed) < free or not free:
                    self._due.wait(self.poll_interval_s)
                    if stop_event.is_set():
                        break

    def _tell_read_failure(self, exc: Exception, outage_told: bool) -> bool:
        """Log a failed read of the outbox: a database outage once, as one line, until
        a read succeeds again (the loop tries every poll interval); anything else with
        its traceback. Returns whether an outage has been told."""
        if transient_fault(exc) is None:
            log.exception("could not read the webhook outbox")
            return outage_told
        if not outage_told:
            log.warning(
                "could not read the webhook outbox: the database is not answering (%s); "
                "trying again every %.1f s",
                type(exc).__name__,
                self.poll_interval_s,
            )
        return True

    def _deliver_and_release(self, delivery: WebhookDelivery) -> None:
        try:
            self.deliver(delivery)
        except Exception:
            log.exception("job %s: webhook attempt crashed", delivery.job_id)
        finally:
            self._in_flight.release()
            self._due.set()

    def deliver(self, delivery: WebhookDelivery) -> bool:
        """Make one attempt and record its outcome in the store; True when delivered."""
        body = event_body(delivery)
        error: str
        try:
            target = check_callback_url(delivery.callback_url, allow_private=self.allow_private)
            status = post(target, signed_headers(self.secret, body), body, self.timeout_s)
        except UnsafeCallbackUrl as exc:
            error = str(exc)
        except (OSError, http.client.HTTPException) as exc:
            error = f"no answer: {type(exc).__name__}"
        else:
            if 200 <= status < 300:
                self.store.finish_webhook(delivery, WebhookOutcome.delivered())
                log.info(
                    "job %s: webhook delivered (attempt %d)", delivery.job_id, delivery.attempt
                )
                return True
            error = f"HTTP {status}"
        if delivery.attempt < self.max_attempts:
            retry_at = utcnow() + timedelta(seconds=retry_delay_s(delivery.attempt))
            self.store.finish_webhook(delivery, WebhookOutcome.retry(retry_at, error))
            log.warning(
                "job %s: webhook attempt %d failed (%s); retrying",
                delivery.job_id,
                delivery.attempt,
                error,
            )
        else:
            self.store.finish_webhook(delivery, WebhookOutcome.abandoned(error))
            log.error(
                "job %s: webhook abandoned after %d attempts: %s",
                delivery.job_id,
                delivery.attempt,
                error,
            )
        return False
