"""Two watchers of one run each receive every message (DL-Tracker's viewers stole each other's)."""

from __future__ import annotations

from fitwire.broker import connect
from fitwire.broker import topology as t
from fitwire.contract import Batch, decode, encode, new_id


def test_two_watchers_each_receive_every_message(amqp_url: str) -> None:
    run_id, model_key = new_id(), "k" + new_id()[:8]
    conn = connect(amqp_url)
    channel = conn.channel()
    watchers = []
    for pattern in (f"ann.{model_key}.{run_id}", f"ann.{model_key}.*"):  # one run; the whole model
        q = channel.queue_declare(queue="", exclusive=True, auto_delete=True, arguments=t.watcher_queue_arguments())
        channel.queue_bind(queue=q.method.queue, exchange=t.PROGRESS.name, routing_key=pattern)
        watchers.append(q.method.queue)
    key = t.progress_key("ann", model_key, run_id)
    for i in range(20):
        msg = Batch(run_id=run_id, model_key=model_key, owner="ann", seq=i, epoch=0, batch=i, logs={"loss": 1.0 / (i + 1)})
        channel.basic_publish(t.PROGRESS.name, key, encode(msg))
    # another user's run with the same model key pattern must not reach ann's watchers
    channel.basic_publish(t.PROGRESS.name, t.progress_key("bob", "other", run_id), b"{}")
    for queue in watchers:
        seen = []
        for _ in range(200):
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                if len(seen) == 20:
                    break
                conn.sleep(0.01)
                continue
            seen.append(decode(body, Batch).batch)
        assert seen == list(range(20))
    conn.close()
