"""Predictions on a broker whose logins the webhook checks: an agent serves its own pools' RPC
queues and answers on ``fitwire.rpc.replies``, never through the default exchange; users reach neither."""

from __future__ import annotations

import pika

from fitwire.agent.predictor import rpc_topology
from fitwire.broker import connect
from fitwire.broker.topology import RPC, RPC_REPLIES, declare, rpc_queue
from tests.broker_auth.conftest import Secured
from tests.broker_auth.test_attacks import ACCESS_REFUSED, _ok, _publish, _refused


def test_an_agent_serves_its_pools_predictions_and_answers_on_the_replies_exchange(secured: Secured) -> None:
    webhook = connect(secured.node.url)  # the webhook's internal account asks, as the route does
    asking = webhook.channel()
    agent = secured.connect(secured.agent)  # it said hello with pool "default"
    try:
        _ok(agent, lambda ch: declare(ch, rpc_topology(("default",))))
        serving = agent.channel()
        replies: list[bytes] = []
        reply_queue = asking.queue_declare("", exclusive=True).method.queue
        asking.queue_bind(reply_queue, RPC_REPLIES.name, routing_key=reply_queue)
        asking.basic_consume(reply_queue, lambda _c, _m, _p, body: replies.append(body), auto_ack=True)
        asking.basic_publish(RPC.name, "predict.default", b"{}",
                             pika.BasicProperties(reply_to=reply_queue, correlation_id="c1"))
        for _ in range(50):
            method, props, _body = serving.basic_get(rpc_queue("default").name, auto_ack=True)
            if method is not None:
                break
            agent.process_data_events(time_limit=0.1)
        assert method is not None and props.reply_to == reply_queue
        serving.confirm_delivery()
        serving.basic_publish(RPC_REPLIES.name, props.reply_to, b'{"ok": true}',
                              pika.BasicProperties(correlation_id=props.correlation_id))
        # the default exchange, which would reach any queue by name, stays closed to agents
        assert _refused(agent, _publish("", reply_queue)) == ACCESS_REFUSED
        webhook.process_data_events(time_limit=1.0)
        assert replies == [b'{"ok": true}']
    finally:
        agent.close()
        webhook.close()


def test_an_agent_cannot_consume_another_pools_predictions(secured: Secured) -> None:
    webhook = connect(secured.node.url)
    declare(webhook.channel(), rpc_topology(("gpu-only",)))
    webhook.close()
    agent = secured.connect(secured.agent)
    try:
        assert _refused(agent, lambda ch: ch.basic_consume(rpc_queue("gpu-only").name, lambda *_: None)) \
            == ACCESS_REFUSED
    finally:
        agent.close()


def test_a_user_can_neither_ask_nor_serve_predictions(secured: Secured) -> None:
    bob = secured.connect(secured.bob)
    try:
        assert _refused(bob, _publish(RPC.name, "predict.default")) == ACCESS_REFUSED
        assert _refused(bob, lambda ch: ch.basic_consume(rpc_queue("default").name, lambda *_: None)) \
            == ACCESS_REFUSED
        assert _refused(bob, _publish("", rpc_queue("default").name)) == ACCESS_REFUSED
    finally:
        bob.close()
