"""A watcher in its own process that counts the batch values each run delivered.

``python -m bench._batch_counter PATTERN``: binds its own watcher queue (as
DESIGN.md describes one) to ``fitwire.progress`` with PATTERN, prints
``ready``, and on every ``dump`` line from stdin prints one JSON line
``{run_id: batches}``. A separate process, so that consuming does not compete
with the measured fit for its interpreter.

Messages are read as plain JSON, not through the wire models, so that a
prototype's compact form counts too: a message whose ``batch`` is a list
carries that many batches, and fitwire's ``batches`` message says how many in ``count``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from typing import Any


def main(pattern: str) -> None:
    from bench._common import amqp_url
    from fitwire.broker import connect
    from fitwire.broker.topology import PROGRESS, watcher_queue_arguments

    counts: Counter[str] = Counter()
    lock = threading.Lock()
    conn = connect(amqp_url())
    channel = conn.channel()
    channel.exchange_declare(exchange=PROGRESS.name, exchange_type=PROGRESS.type, durable=PROGRESS.durable)
    # A deep queue: this watcher measures delivery, so the broker must not drop-head for it.
    arguments = {**watcher_queue_arguments(), "x-max-length": 1_000_000}
    queue = channel.queue_declare(queue="", exclusive=True, auto_delete=True, arguments=arguments).method.queue
    channel.queue_bind(queue=queue, exchange=PROGRESS.name, routing_key=pattern)

    def on_message(_ch: Any, _method: Any, _props: Any, body: bytes) -> None:
        try:
            msg = json.loads(body)
        except ValueError:
            return
        if not isinstance(msg, dict) or not str(msg.get("type", "")).startswith("batch"):
            return
        batch = msg.get("batch")
        n = msg.get("count") or (len(batch) if isinstance(batch, list) else 1)  # ``batches`` carries ``count``
        with lock:
            counts[str(msg.get("run_id"))] += n if isinstance(n, int) else 1

    channel.basic_consume(queue=queue, on_message_callback=on_message, auto_ack=True)
    requests: list[str] = []

    def read_stdin() -> None:
        for line in sys.stdin:
            requests.append(line.strip())
            conn.add_callback_threadsafe(lambda: None)
        requests.append("quit")
        conn.add_callback_threadsafe(lambda: None)

    threading.Thread(target=read_stdin, daemon=True).start()
    print("ready", flush=True)
    while True:
        conn.process_data_events(time_limit=0.2)
        while requests:
            cmd = requests.pop(0)
            if cmd == "quit":
                conn.close()
                return
            # Let what is already in the queue arrive before answering: until 0.3 s bring nothing new.
            for _ in range(100):
                before = sum(counts.values())
                conn.process_data_events(time_limit=0.3)
                if sum(counts.values()) == before:
                    break
            with lock:
                print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
