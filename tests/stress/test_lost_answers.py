"""Each command once when answers are lost: 4 processes, both write modes, DynamoDB Local.

A quarter of every write call is applied and then its answer lost (:mod:`.lost_answers`);
botocore sends it again. Every command that returned must be stored exactly once, every
command that raised must have left nothing, and no placement without an id may store two
orders. The processes change the lines of one shared order (they race on it) and place new
orders (each its own stream).
"""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from uuid import UUID

import pytest

from orders import OrderLine, OrderService
from orders.events import OrderLinesChanged, OrderPlaced
from tests.stress.lost_answers import fault_worker
from tests.stress.processes import SPAWN, START_DELAY
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb

PROCESSES = 4
COMMANDS = 12
SHARE = 0.25


class TestLostAnswers(DynamoDBLocalTestCase):
    def run_mode(self, mode: str) -> None:
        env = {**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": mode}
        service = OrderService(env=env)
        self.addCleanup(service.close)
        shared = service.place_order("shared", [OrderLine("first", 1, Decimal("1.00"))], "EUR")
        start_at = time.time() + START_DELAY
        with SPAWN.Pool(PROCESSES) as pool:
            pending = [
                pool.apply_async(
                    fault_worker,
                    (env, w, str(shared.order_id), COMMANDS),
                    {"share": SHARE, "start_at": start_at},
                )
                for w in range(PROCESSES)
            ]
            results = [p.get(timeout=300) for p in pending]
        commands = [command for done, _ in results for command in done]
        self.assertGreater(sum(lost for _, lost in results), 0, "no answer was lost")
        self.assertEqual(len(commands), PROCESSES * COMMANDS)

        changed = Counter(
            line.sku
            for event in service.events.get(shared.order_id)
            if isinstance(event, OrderLinesChanged)
            for line in event.lines.items
        )
        placed: Counter[str] = Counter()
        placed_ids: dict[str, str] = {}
        namespace = f"{service.factory.events_namespace}#stream#"  # type: ignore[attr-defined]
        for item in self.scan_table():
            pk = item["pk"]["S"]
            if not pk.startswith(namespace) or int(item["sk"]["N"]) != 1:
                continue
            stream_id = UUID(pk[len(namespace) :])
            first = next(iter(service.events.get(stream_id, lte=1)))
            if isinstance(first, OrderPlaced) and first.customer_id.startswith("w"):
                placed[first.customer_id] += 1
                placed_ids[first.customer_id] = str(stream_id)
        for kind, order_id, tag, outcome in commands:
            stored = changed[tag] if kind == "change" else placed[tag]
            if outcome == "ok":
                self.assertEqual(stored, 1, f"{kind} {tag} returned: stored {stored} times")
                if kind == "place":
                    self.assertEqual(placed_ids[tag], order_id)
            else:
                self.assertEqual(stored, 0, f"{kind} {tag} raised {outcome}: stored {stored}")
        self.assertTrue(all(outcome == "ok" for _, _, _, outcome in commands if _ == "place"))

    def test_indexed_mode(self) -> None:
        self.run_mode("indexed")

    def test_transactional_mode(self) -> None:
        self.run_mode("transactional")
