"""Benchmark of the SQS consumer: messages/s beside raw boto3 receive + delete on one server.

Run on demand (it is not a test)::

    .venv/bin/python -m tests.benchmarks.bench_consumers

It starts its own moto server on a loopback port (the test harness), and for each of ``ROUNDS``
rounds fills two queues with the same ``MESSAGES`` contract envelopes of real order events, and
drains them batch by batch in turn: one with raw boto3 (``receive_message`` of 10, long poll
off, and ``delete_message_batch``), the other with :class:`adapters.sqs.worker.SqsConsumer` running
the
downstream views (``projections.downstream``, on the in-memory view store) on every message.
Taking turns per batch means a busy moment of the machine slows both sides alike. It prints
each round's messages/s and the ratio consumer/raw, and the median ratio. moto's SQS is slow
(its per-request cost dominates both sides); the ratio is the figure to read.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.sqs.worker import SqsConsumer
from projections.downstream import DownstreamProjection
from projections.memory import InMemoryViewStore
from tests.consumers.builders import demo_service, logged_envelopes
from tests.consumers.queues import queue_with_dead_letters, send_bodies
from tests.consumers.test_sqs_consumer import body
from tests.support.moto_server import moto_server, stop_moto_server

MESSAGES = 500
ROUNDS = 5


def raw_batch(sqs: Any, url: str) -> int:
    """Raw boto3: receive up to 10 messages and delete them; how many."""
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    if messages:
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return len(messages)


def consumer_batch(consumer: SqsConsumer) -> int:
    """The consumer: one poll (receive, handle each, delete); how many it handled."""
    outcome = consumer.poll()
    if outcome.failed:
        msg = f"benchmark messages failed: {outcome.failed}"
        raise RuntimeError(msg)
    return outcome.succeeded


def race(sqs: Any, bodies: list[str]) -> tuple[float, float]:
    """Both sides drain a queue of ``bodies`` each, batch by batch in turn (so a slow moment of
    the machine hits both alike); their messages/s."""
    raw_url, _ = queue_with_dead_letters(sqs, "bench-raw")
    consumer_url, _ = queue_with_dead_letters(sqs, "bench-consumer")
    send_bodies(sqs, raw_url, bodies)
    send_bodies(sqs, consumer_url, bodies)
    projection = DownstreamProjection(InMemoryViewStore())
    consumer = SqsConsumer(
        sqs, consumer_url, Dispatcher([(ORDER_DETAIL_TYPES, projection)]), wait_seconds=0
    )
    seconds = {"raw": 0.0, "consumer": 0.0}
    done = {"raw": 0, "consumer": 0}
    turn = 0
    while min(done.values()) < len(bodies):
        sides = ("raw", "consumer") if turn % 2 == 0 else ("consumer", "raw")
        for side in sides:
            if done[side] == len(bodies):
                continue
            started = time.perf_counter()
            done[side] += raw_batch(sqs, raw_url) if side == "raw" else consumer_batch(consumer)
            seconds[side] += time.perf_counter() - started
        turn += 1
    return len(bodies) / seconds["raw"], len(bodies) / seconds["consumer"]


def main() -> None:
    envelopes = logged_envelopes(demo_service(MESSAGES // 2))[:MESSAGES]
    bodies = [body(envelope) for envelope in envelopes]
    server = moto_server()
    try:
        sqs = server.client("sqs")
        ratios = []
        print(f"{len(bodies)} messages per run, moto server {server.endpoint_url}")
        for round_number in range(ROUNDS):
            server.reset()
            raw, consumed = race(sqs, bodies)
            ratios.append(consumed / raw)
            print(
                f"round {round_number + 1}: raw boto3 {raw:,.0f} msg/s, "
                f"consumer {consumed:,.0f} msg/s, ratio {consumed / raw:.2f}x"
            )
        print(f"median ratio consumer/raw: {statistics.median(ratios):.2f}x")
    finally:
        stop_moto_server()


if __name__ == "__main__":
    main()
