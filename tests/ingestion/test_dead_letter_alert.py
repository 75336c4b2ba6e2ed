"""A dead letter's alert goes through the alerts domain: the lifecycle opens it (or bumps the
open one) and its deliveries are queued, so a subscribed channel is told (a real webhook
receiver, the real delivery task)."""

from __future__ import annotations

from asinwatch.ingestion import pipeline_alerts, repository
from asinwatch.kit.db import session_scope
from asinwatch.simulator import sample_asins
from tests.alerts.delivery_helpers import (
    Receiver,
    add_channel,
    delivery_env,
    receiver,
    run_until_done,
)
from tests.ingestion.test_promotion import MKT, new_run

__all__ = ["delivery_env", "receiver"]  # fixtures used by name below


def test_a_dead_letter_tells_the_subscribed_channels(
    delivery_env: None, receiver: Receiver
) -> None:
    add_channel("ops", receiver.url("/ops"))
    run_id = new_run(sample_asins(717, 60))
    alert_ids = []
    for batch_no in (0, 1):
        with session_scope() as session:
            claim = repository.claim_batch(session, run_id, batch_no, max_attempts=5)
            assert claim is not None
            letter = repository.park_dead(session, claim, task_name="t", error="HTTP 401 bad")
            assert letter is not None
            alert_ids.append(
                pipeline_alerts.raise_dead_letter(session, MKT, run_id, letter, "HTTP 401 bad")
            )
    # The first opens the alert and queues its delivery; the second bumps it within the
    # cooldown (no second notification).
    assert alert_ids[0] is not None and alert_ids[1] is None
    run_until_done()
    sent = receiver.accepted("/ops")
    assert len(sent) == 1 and sent[0].body is not None
    assert sent[0].body["alert_type"] == "ingest_dead_letter"
    assert sent[0].body["alert_id"] == alert_ids[0]
    assert sent[0].body["severity"] == "critical"
