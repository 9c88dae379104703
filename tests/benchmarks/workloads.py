"""What the event store benchmark runs: the commands, their runs, and a raw replay.

- The 1-event command is ``OrderService.change_lines`` on a pending order (load, decide,
  save one event), without and with snapshotting enabled.
- The 10-event command is ``TallyApp.add``: the Order aggregate has no command recording 10
  events, so a small benchmark aggregate, :class:`Tally`, is loaded and saved the same way
  with 10 events in the one save.
- The raw baseline replays, with a plain boto3 client on a table in the same state, exactly
  the requests the framework sent for each command (captured before botocore adds anything),
  so both sides do the same server work and the difference is the framework's own time.
"""

from __future__ import annotations

import copy
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from botocore import xform_name
from botocore.exceptions import ClientError
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from adapters.dynamodb import OperationCount
from orders import OrderLine, OrderService
from tests.stress.concurrency import recorder_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WRITE_OPERATIONS = frozenset({"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem"})


class Tally(Aggregate):
    """A benchmark aggregate: a count that grows one event at a time."""

    def __init__(self) -> None:
        self.count = 0

    @event("Added")
    def add_one(self) -> None:
        self.count += 1


class TallyApp(Application[UUID]):
    """Runs the 10-event command: load a tally, record ``events`` events, save them at once."""

    def create(self) -> UUID:
        tally = Tally()
        self.save(tally)
        return tally.id

    def add(self, tally_id: UUID, events: int) -> int:
        tally: Tally = self.repository.get(tally_id)
        for _ in range(events):
            tally.add_one()
        self.save(tally)
        return tally.version


@dataclass(frozen=True)
class Workload:
    """One kind of command: how to make a target for it, and how to run it once."""

    name: str
    events_per_command: int
    new_app: Callable[[dict[str, str]], Application[UUID]]
    new_target: Callable[[Application[UUID], int], UUID]
    run: Callable[[Application[UUID], UUID, int], None]


def _order_service(env: dict[str, str]) -> Application[UUID]:
    return OrderService(env=env)


def _snapshotting_order_service(env: dict[str, str]) -> Application[UUID]:
    return OrderService(env={OrderService.SNAPSHOT_INTERVAL: "100", **env})


def _place(app: Application[UUID], n: int) -> UUID:
    assert isinstance(app, OrderService)
    placed = (OrderLine(f"PLACED-{n}", 1, Decimal("12.50")),)
    return app.place_order(f"customer-{n}", placed, "EUR").order_id


def _change_lines(app: Application[UUID], order_id: UUID, n: int) -> None:
    assert isinstance(app, OrderService)
    app.change_lines(order_id, _lines(n))


def _lines(n: int) -> tuple[OrderLine, ...]:
    """Lines that differ from those of command ``n - 1`` and from any placement."""
    return (OrderLine(f"SKU-{n}", 1 + n % 5, Decimal("12.50")),)


def _tally_app(env: dict[str, str]) -> Application[UUID]:
    return TallyApp(env=env)


def _create_tally(app: Application[UUID], n: int) -> UUID:
    assert isinstance(app, TallyApp)
    return app.create()


def _add_ten(app: Application[UUID], tally_id: UUID, n: int) -> None:
    assert isinstance(app, TallyApp)
    app.add(tally_id, 10)


ONE_EVENT = Workload("1-event: OrderService.change_lines", 1, _order_service, _place, _change_lines)
ONE_EVENT_SNAPSHOTTING = Workload(
    "1-event, snapshotting on (every 100)",
    1,
    _snapshotting_order_service,
    _place,
    _change_lines,
)
"""The same command with snapshotting enabled (no order here reaches 100 events)."""
TEN_EVENTS = Workload("10-event: TallyApp.add (Tally)", 10, _tally_app, _create_tally, _add_ten)


@dataclass
class Run:
    """What one run of ``commands`` commands cost: wall time, per-command times, calls."""

    commands: int
    seconds: float
    command_seconds: list[float]
    cost: Mapping[str, OperationCount]

    @property
    def per_second(self) -> float:
        return self.commands / self.seconds

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.command_seconds)

    def per_command(self, attribute: str, operations: Callable[[str], bool]) -> float:
        total = sum(
            getattr(count, attribute) for name, count in self.cost.items() if operations(name)
        )
        return float(total) / self.commands


def run_commands(
    workload: Workload,
    apps: list[Application[UUID]],
    targets: list[list[UUID]],
    commands_per_thread: int,
    deadline: float,
) -> Run:
    """Runs the command round-robin over each thread's targets, one thread per target list.

    Thread ``t`` uses ``apps[t % len(apps)]``. A thread stops early at ``deadline``
    (``time.monotonic()``); the run counts the commands actually made.
    """
    before = {app: recorder_of(app).datastore.metrics.snapshot() for app in apps}
    times: list[list[float]] = [[] for _ in targets]
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        app = apps[thread % len(apps)]
        mine = targets[thread]
        try:
            barrier.wait()
            for n in range(commands_per_thread):
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                workload.run(app, mine[n % len(mine)], thread * commands_per_thread + n)
                times[thread].append(time.perf_counter() - started)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(targets))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    cost: dict[str, OperationCount] = {}
    for app, snapshot in before.items():
        spent = recorder_of(app).datastore.metrics.snapshot() - snapshot
        for name, count in spent.by_operation.items():
            cost[name] = cost.get(name, OperationCount()) + count
    all_times = [t for thread_times in times for t in thread_times]
    return Run(len(all_times), seconds, all_times, cost)


@dataclass
class RequestLog:
    """The requests a client sent, as given to it (before botocore adds tokens), per group."""

    groups: list[list[tuple[str, dict[str, Any]]]] = field(default_factory=list)
    _current: list[tuple[str, dict[str, Any]]] | None = None

    def attach(self, client: DynamoDBClient) -> None:
        client.meta.events.register("provide-client-params.dynamodb", self._on_params)

    @contextmanager
    def group(self) -> Iterator[None]:
        """Requests sent while the block runs form one group (one command)."""
        self._current = []
        try:
            yield
        finally:
            self.groups.append(self._current)
            self._current = None

    def _on_params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self._current is not None:
            self._current.append((model.name, copy.deepcopy(params)))


def replay(
    client: DynamoDBClient, groups: list[list[tuple[str, dict[str, Any]]]], table_name: str
) -> tuple[list[float], int]:
    """Sends each group's requests again on ``table_name``; each group's time, and errors.

    A request DynamoDB refuses (as it refused the original, for example a transaction that
    lost a race) counts as an error, not a failure.
    """
    times = []
    errors = 0
    for requests in groups:
        prepared = [
            (getattr(client, xform_name(name)), _on_table(params, table_name))
            for name, params in requests
        ]
        started = time.perf_counter()
        for method, params in prepared:
            try:
                method(**params)
            except ClientError:
                errors += 1
        times.append(time.perf_counter() - started)
    return times, errors


def _on_table(value: Any, table_name: str) -> Any:
    """``value`` with every ``TableName`` set to ``table_name``."""
    if isinstance(value, dict):
        return {
            k: table_name if k == "TableName" else _on_table(v, table_name)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_on_table(v, table_name) for v in value]
    return value
