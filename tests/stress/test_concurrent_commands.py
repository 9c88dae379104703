"""Bounded stress tests of ``OrderService`` on the DynamoDB event store (DynamoDB Local),
in both write modes.

One order: 8 services (each its own client and recorder) in threads race on one order.
Distinct orders: 8 writer PROCESSES, each with its own service, on orders of their own (and,
in the indexed mode, the indexer in a process of its own). Each test then reads every stored
event back and checks the store's guarantees: contiguous versions, a gapless notification
log, each order's events in version order, no event lost or duplicated, every rejected save
reported as a version conflict, every command applied exactly once, and a reader tailing
the log never skipping an id. Figures are printed; run with ``-rP`` to see them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.dynamodb import StreamConflictError
from adapters.dynamodb.indexer import indexing
from adapters.dynamodb.repair import verify
from orders import OrderLinesChanged, OrderPlaced, OrderService
from tests.stress.concurrency import (
    LogFollower,
    RawTable,
    SaveWatch,
    identity,
    recorder_of,
    repeated,
    run_workers,
    sku_of,
    unique_lines,
)
from tests.stress.processes import IndexerProcess, percentile, run_writers, wait_until
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb

WORKERS = 8
COMMANDS_PER_WORKER = 100
WORKERS_TIMEOUT = 140.0
"""Seconds the workers of one test may take; the test fails beyond it."""
ONE_ORDER_MAX_ATTEMPTS = 200
"""Tries per command on the one contended order; 8 ways took up to 35 in our runs."""


PROCESSES = 8
ORDERS_PER_PROCESS = 3
COMMANDS_PER_PROCESS = 30
CATCH_UP_SECONDS = 60.0


class StressTestCase(DynamoDBLocalTestCase):
    """A fresh table, and the checks every stress test makes of what was stored."""

    mode = "transactional"

    def env(self, **settings: str) -> dict[str, str]:
        return {**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": self.mode, **settings}

    def service(self, **settings: str) -> OrderService:
        """A new ``OrderService`` (its own client) on this test's table."""
        service = OrderService(env=self.env(**settings))
        self.addCleanup(service.close)
        return service

    def check_store(
        self,
        service: OrderService,
        streams: Sequence[UUID],
        watch: SaveWatch | None,
        follower: LogFollower,
    ) -> list[StoredEvent]:
        """Checks the streams and the log; returns every stored event, stream after stream.

        ``watch`` (saves made in this process) has the ids each save returned, checked in the
        transactional mode; in the indexed mode the log is checked against the stream items.
        """
        recorder = recorder_of(service)
        raw = RawTable(self.client, self.table_name, recorder.events_namespace)
        stored: list[StoredEvent] = []
        for order_id in streams:
            events = list(recorder.select_events(order_id))
            versions = [e.originator_version for e in events]
            self.assertEqual(versions, list(range(1, len(events) + 1)), "versions contiguous")
            if self.mode == "transactional":
                raw_events = list(map(identity, raw.stream(order_id)))
                self.assertEqual(raw_events, list(map(identity, events)))
                self.assertEqual(raw.stream_head(order_id), len(events))
            stored += events

        total = len(stored)
        log = list(recorder.select_notifications(1, total + 100))
        self.assertEqual([n.id for n in log], list(range(1, total + 1)), "ids gapless from 1")
        self.assertEqual(raw.log(), log)
        self.assertEqual(raw.log_head(), total)
        self.assertEqual(recorder.max_notification_id(), total)
        self.assertEqual(repeated([identity(n) for n in log]), [], "no event logged twice")
        self.assertEqual(sorted(map(identity, log)), sorted(map(identity, stored)))
        for order_id in streams:
            in_log = [n.originator_version for n in log if n.originator_id == order_id]
            self.assertEqual(in_log, list(range(1, len(in_log) + 1)), "ids ascend with versions")

        if self.mode == "indexed":
            report = verify(recorder.datastore, recorder.events_namespace)
            self.assertTrue(report.ok, report)
            self.assertEqual(report.log_events, total)
        if watch is not None and self.mode == "transactional":
            self.assertEqual(watch.other_errors, [])
            given: list[int] = []
            for events, ids in watch.committed:
                run = list(range(ids[0], ids[0] + len(events)))
                self.assertEqual(ids, run, "one save, one run")
                self.assertEqual([identity(log[i - 1]) for i in ids], list(map(identity, events)))
                given += ids
            self.assertEqual(sorted(given), list(range(1, total + 1)), "each id given once")

        self.assertIsNone(follower.error)
        self.assertEqual(follower.jumps, [], "a reader skipped an id that committed later")
        self.assertEqual(follower.seen, log)
        return stored

    def check_lines(
        self, service: OrderService, stored: Sequence[StoredEvent], expected_skus: set[str]
    ) -> None:
        """Each expected line set was applied exactly once, and nothing else was."""
        skus = []
        for event in map(service.mapper.to_domain_event, stored):
            self.assertIsInstance(event, OrderPlaced | OrderLinesChanged)
            assert isinstance(event, OrderPlaced | OrderLinesChanged)
            skus += [line.sku for line in event.lines]
        self.assertEqual(repeated(skus), [], "a command was applied twice")
        self.assertEqual(set(skus), expected_skus)

    def check_conflicts(self, watch: SaveWatch, order_ids: set[UUID]) -> None:
        """Every rejected save was a version conflict naming the order and where it stood."""
        for conflict in watch.all_conflicts():
            self.assertIsInstance(conflict, StreamConflictError)
            assert isinstance(conflict, StreamConflictError)
            self.assertIn(conflict.originator_id, order_ids)
            self.assertIsNotNone(conflict.expected_version)
            self.assertIsNotNone(conflict.actual_version)
            assert conflict.expected_version is not None and conflict.actual_version is not None
            self.assertGreater(conflict.actual_version, conflict.expected_version)

    def transaction_errors(self, services: Sequence[OrderService]) -> int:
        """Writes (``TransactWriteItems``, and ``PutItem`` of the indexed mode's saves)
        DynamoDB refused, counted by the services' datastores."""
        errors = 0
        for service in services:
            by_operation = recorder_of(service).datastore.metrics.snapshot().by_operation
            for operation in ("TransactWriteItems", "PutItem"):
                if operation in by_operation:
                    errors += by_operation[operation].errors
        return errors


class TestConcurrentCommands(StressTestCase):
    @pytest.mark.acceptance  # 1-3 minutes of 8 processes: on demand, as the indexed one
    @pytest.mark.timeout(200)
    def test_eight_workers_on_one_order(self) -> None:
        """8 services (as 8 processes) each change one order's lines 100 times at once.

        Proves, for 800 racing commands on one stream: every command is applied exactly once
        (its unique line set is stored once, at the version the command returned), versions
        and notification ids run 1..801 without gap or duplicate, a concurrent reader never
        skips an id, and every rejected save was a ``StreamConflictError`` that the
        service's retry absorbed (no command raised).

        The services pause between tries as by default (jittered, doubling, capped); under
        this contention a few commands lose 30 times or more, so the budget of tries is
        raised. Snapshots every 25 events keep each load short.
        """
        settings = {
            OrderService.MAX_ATTEMPTS: str(ONE_ORDER_MAX_ATTEMPTS),
            OrderService.SNAPSHOT_INTERVAL: "25",
        }
        services = [self.service(**settings) for _ in range(WORKERS)]
        order_id = uuid4()
        watch = SaveWatch()
        applied: dict[tuple[int, int], int] = {}
        attempts: list[int] = []

        def change(worker: int, command: int) -> None:
            before = watch.conflicts_of_this_thread()
            version = services[worker].change_lines(order_id, unique_lines(worker, command))
            applied[worker, command] = version
            attempts.append(1 + watch.conflicts_of_this_thread() - before)

        started = time.monotonic()
        with ExitStack() as stack:
            for service in services:
                stack.enter_context(watch.watching(recorder_of(service)))
            services[0].place_order("customer-1", unique_lines(0, -1), "EUR", order_id=order_id)
            stack.enter_context(indexing(services[0].factory, timeout=CATCH_UP_SECONDS))
            follower = stack.enter_context(LogFollower(recorder_of(services[0])))
            failures = run_workers(WORKERS, COMMANDS_PER_WORKER, change, timeout=WORKERS_TIMEOUT)
            wait_until(
                lambda: (services[0].recorder.max_notification_id() or 0) >= len(applied) + 1,
                CATCH_UP_SECONDS,
                "the log did not reach every event",
            )
        elapsed = time.monotonic() - started

        self.assertEqual(failures, {}, "no command may raise")
        stored = self.check_store(services[0], [order_id], watch, follower)
        self.assertEqual(len(stored), 1 + WORKERS * COMMANDS_PER_WORKER)
        expected = {sku_of(w, c) for w in range(WORKERS) for c in range(COMMANDS_PER_WORKER)}
        self.check_lines(services[0], stored, expected | {sku_of(0, -1)})
        for (worker, command), version in applied.items():
            event = services[0].mapper.to_domain_event(stored[version - 1])
            assert isinstance(event, OrderLinesChanged)
            self.assertEqual([line.sku for line in event.lines], [sku_of(worker, command)])
        self.check_conflicts(watch, {order_id})

        conflicts = len(watch.all_conflicts())
        self.assertEqual(len(watch.committed), 1 + WORKERS * COMMANDS_PER_WORKER)
        refused = self.transaction_errors(services)
        self.assertGreaterEqual(refused, conflicts)
        quantiles = statistics.quantiles(attempts, n=100)
        print(
            f"one order: {len(attempts)} commands in {elapsed:.1f} s, {conflicts} version "
            f"conflicts = retries; attempts per command: median {statistics.median(attempts)}, "
            f"p90 {quantiles[89]:.0f}, p99 {quantiles[98]:.0f}, max {max(attempts)} (budget "
            f"{services[0].max_attempts}); {refused - conflicts} log-head races re-sent "
            f"inside the recorder, follower read {len(follower.seen)} notifications in "
            f"{follower.reads} reads"
        )

    def writer_processes_on_distinct_orders(self) -> None:
        """8 processes, each its own service, run 30 one-event commands on 3 orders of
        their own while a reader in this process tails the log.

        Proves, across processes: every command applied exactly once at the version it
        returned, versions contiguous, ids gapless from 1 and each event logged once, each
        order's events in version order, no conflict between distinct orders, and a tailing
        reader that never skips an id. In the indexed mode the indexer runs in a ninth
        process and the log is complete once it has caught up.
        """
        reader = self.service()
        recorder = recorder_of(reader)
        env = self.env()
        total = PROCESSES * (ORDERS_PER_PROCESS + COMMANDS_PER_PROCESS)
        started = time.monotonic()
        with ExitStack() as stack:
            if self.mode == "indexed":
                stack.enter_context(IndexerProcess(env))
            follower = stack.enter_context(LogFollower(recorder))
            results = run_writers(
                env, PROCESSES, ORDERS_PER_PROCESS, COMMANDS_PER_PROCESS, timeout=WORKERS_TIMEOUT
            )
            wrote = time.monotonic()
            wait_until(
                lambda: (recorder.max_notification_id() or 0) >= total,
                CATCH_UP_SECONDS,
                "the log did not reach every event",
            )
        caught_up = time.monotonic()

        order_ids = sorted({UUID(order) for r in results for order, _, _, _ in r.commands})
        self.assertEqual(len(order_ids), PROCESSES * ORDERS_PER_PROCESS)
        stored = self.check_store(reader, order_ids, None, follower)
        self.assertEqual(len(stored), total)
        by_position = {(str(e.originator_id), e.originator_version): e for e in stored}
        for result in results:
            for order, version, sku, _ in result.commands:
                event = reader.mapper.to_domain_event(by_position[order, version])
                assert isinstance(event, OrderLinesChanged)
                self.assertEqual([line.sku for line in event.lines], [sku])
        commands = sum(len(r.commands) for r in results)
        latencies = [t for r in results for t in r.latencies]
        print(
            f"{self.mode}, {PROCESSES} writer processes on distinct orders: {commands} commands "
            f"in {wrote - started:.1f} s (with start-up), "
            f"{sum(r.round_trips for r in results) / commands:.2f} round trips and "
            f"{sum(r.estimated_wcu for r in results) / commands:.1f} WCU per command, "
            f"p99 {1000 * percentile(latencies, 99):.0f} ms; log complete "
            f"{caught_up - wrote:.2f} s after the last write; follower read "
            f"{len(follower.seen)} notifications in {follower.reads} reads"
        )

    @pytest.mark.acceptance
    @pytest.mark.timeout(200)
    def test_writer_processes_on_distinct_orders(self) -> None:
        """In the transactional mode every save of 8 processes queues for the one log head,
        so this takes a minute or more: only with ``-m acceptance``."""
        self.writer_processes_on_distinct_orders()


class TestConcurrentCommandsIndexed(TestConcurrentCommands):
    """The same stress tests in the indexed write mode (the one-order test, about a minute,
    only with ``-m acceptance``)."""

    mode = "indexed"

    @pytest.mark.timeout(200)
    def test_writer_processes_on_distinct_orders(self) -> None:
        self.writer_processes_on_distinct_orders()

    @pytest.mark.acceptance
    @pytest.mark.timeout(200)
    def test_eight_workers_on_one_order(self) -> None:
        super().test_eight_workers_on_one_order()
