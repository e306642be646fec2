"""A Tracker of an older wire contract is told, in one sentence, to upgrade; nothing of it is half-stored."""

from __future__ import annotations

import json

from fitwire.contract import TrainBegin, encode, new_id
from tests.fixtures.webhook import LiveWebhook


def test_a_v1_train_begin_is_refused_with_one_sentence_saying_what_to_do(live_webhook: LiveWebhook) -> None:
    token = live_webhook.create_user("olga", "a long enough password")
    key = live_webhook.create_model(token, "old client")
    run_id = new_id()
    body = json.loads(encode(TrainBegin(run_id=run_id, model_key=key, epochs=2)))
    body["v"] = 1  # what fitwire before owner-first signals sends

    response = live_webhook.api("POST", "/api/v1/events", token, data=json.dumps(body),
                                headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "This fitwire client speaks wire contract v1; the server speaks v2: pip install -U fitwire."
    )
    assert live_webhook.api("GET", f"/api/v1/runs/{run_id}", token).status_code == 404
    # The same record in the current contract is stored: only the version was refused.
    body["v"] = 2
    assert live_webhook.api("POST", "/api/v1/events", token, json=body).status_code == 201
