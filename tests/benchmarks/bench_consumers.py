"""Benchmark of the SQS consumer: messages/s beside raw boto3 receive + delete on one server.

Run on demand (it is not a test)::

    .venv/bin/python -m tests.benchmarks.bench_consumers

It starts its own moto server on a loopback port (the test harness), and for each of ``ROUNDS``
rounds fills a queue with ``MESSAGES`` contract envelopes of real order events, then drains it
twice, in alternating order: once with raw boto3 (``receive_message`` of 10, long poll off, and
``delete_message_batch``), once with :class:`adapters.sqs.SqsConsumer` running the downstream
views (``projections.downstream``, on the in-memory view store) on every message. It prints
each run's messages/s and the ratio consumer/raw, and the median ratio. moto's SQS is slow
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

from adapters.sqs import SqsConsumer
from projections.consumers import ORDER_DETAIL_TYPES, Dispatcher
from projections.downstream import DownstreamProjection
from projections.memory import InMemoryViewStore
from tests.consumers.builders import demo_service, logged_envelopes
from tests.consumers.queues import queue_with_dead_letters, send_bodies
from tests.consumers.test_sqs_consumer import body
from tests.support.moto_server import moto_server, stop_moto_server

MESSAGES = 500
ROUNDS = 5


def raw_drain(sqs: Any, url: str, count: int) -> float:
    """Seconds raw boto3 takes to receive and delete ``count`` messages."""
    started = time.perf_counter()
    done = 0
    while done < count:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        done += len(messages)
    return time.perf_counter() - started


def consumer_drain(sqs: Any, url: str, count: int, bodies: list[str]) -> float:
    """Seconds the consumer takes to handle and delete ``count`` messages."""
    projection = DownstreamProjection(InMemoryViewStore())
    consumer = SqsConsumer(sqs, url, Dispatcher([(ORDER_DETAIL_TYPES, projection)]), wait_seconds=0)
    started = time.perf_counter()
    done = 0
    while done < count:
        outcome = consumer.poll()
        if outcome.failed:
            msg = f"benchmark messages failed: {outcome.failed}"
            raise RuntimeError(msg)
        done += outcome.succeeded
    return time.perf_counter() - started


def main() -> None:
    envelopes = logged_envelopes(demo_service(MESSAGES // 2))[:MESSAGES]
    bodies = [body(envelope) for envelope in envelopes]
    server = moto_server()
    try:
        sqs = server.client("sqs")
        ratios = []
        print(f"{len(bodies)} messages per run, moto server {server.endpoint_url}")
        for round_number in range(ROUNDS):
            figures: dict[str, float] = {}
            order = ("raw", "consumer") if round_number % 2 == 0 else ("consumer", "raw")
            for side in order:
                server.reset()
                url, _ = queue_with_dead_letters(sqs, "bench")
                send_bodies(sqs, url, bodies)
                seconds = (
                    raw_drain(sqs, url, len(bodies))
                    if side == "raw"
                    else consumer_drain(sqs, url, len(bodies), bodies)
                )
                figures[side] = len(bodies) / seconds
            ratio = figures["consumer"] / figures["raw"]
            ratios.append(ratio)
            print(
                f"round {round_number + 1}: raw boto3 {figures['raw']:,.0f} msg/s, "
                f"consumer {figures['consumer']:,.0f} msg/s, ratio {ratio:.2f}x"
            )
        print(f"median ratio consumer/raw: {statistics.median(ratios):.2f}x")
    finally:
        stop_moto_server()


if __name__ == "__main__":
    main()
