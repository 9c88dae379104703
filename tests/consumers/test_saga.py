"""The payment saga through SQS: confirms once however often delivered; misfits dead-lettered."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID, uuid4

from adapters.consumers.dispatcher import PAYMENT_DETAIL_TYPES, Dispatcher
from adapters.consumers.saga import PaymentSaga
from adapters.sqs.dead_letters import dead_letters, redrive
from adapters.sqs.worker import SqsConsumer
from orders import OrderLine, OrderService
from schemas.payments import (
    PaymentFailedEnvelope,
    PaymentSucceededEnvelope,
    payment_failed,
    payment_succeeded,
)
from tests.consumers.queues import queue_depth, queue_with_dead_letters, send_bodies
from tests.consumers.test_sqs_consumer import body, drain
from tests.support.moto_server import MotoServer

LINES = [OrderLine(sku="BOOK-001", quantity=2, unit_price=Decimal("12.50"))]


def succeeded(order_id: UUID, amount: str, currency: str = "EUR") -> PaymentSucceededEnvelope:
    return payment_succeeded(order_id, f"pay-{order_id.hex[:8]}", Decimal(amount), currency)


def failed(order_id: UUID) -> PaymentFailedEnvelope:
    return payment_failed(order_id, "pay-x", Decimal("25.00"), "EUR", "card declined")


def test_the_saga_confirms_once_cancels_once_and_dead_letters_misfits(
    moto: MotoServer,
) -> None:
    service = OrderService()
    paid = service.place_order("c-1", LINES, "EUR").order_id
    declined = service.place_order("c-2", LINES, "EUR").order_id
    underpaid = service.place_order("c-3", LINES, "EUR").order_id
    unknown = uuid4()
    success = succeeded(paid, "25.00")
    decline = failed(declined)
    wrong_amount = succeeded(underpaid, "20.00")
    too_early = succeeded(unknown, "25.00")
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "payments")
    bodies = [body(e) for e in (success, decline)] * 3
    bodies += [body(e) for e in (wrong_amount, too_early)]
    send_bodies(sqs, url, bodies)

    consumer = SqsConsumer(
        sqs,
        url,
        Dispatcher([(PAYMENT_DETAIL_TYPES, PaymentSaga(service))]),
        wait_seconds=0,
        retry_delay=0,
    )
    drain(consumer, sqs, url)

    history = service.history(paid)
    assert [entry.type_name for entry in history] == ["OrderPlaced", "PaymentConfirmed"]
    assert history[-1].causation_id == str(success.id)
    cancelled = service.history(declined)
    assert [entry.type_name for entry in cancelled] == ["OrderPlaced", "OrderCancelled"]
    assert cancelled[-1].causation_id == str(decline.id)
    assert service.get_order(underpaid).status == "pending"
    reasons = {letter.body: letter.reason for letter in dead_letters(sqs, dead_letter_url)}
    assert reasons == {
        body(wrong_amount): (
            f"OrderRuleError: payment-equals-total: payment pay-{underpaid.hex[:8]} of 20.00 "
            "EUR does not equal the order total 25.00 EUR"
        ),
        body(too_early): f"OrderNotFoundError: order {unknown} not found",
    }

    # The cause fixed (the order is placed now): redrive applies the payment, once.
    service.place_order("c-4", LINES, "EUR", order_id=unknown)
    assert redrive(sqs, dead_letter_url, url) == 2
    drain(consumer, sqs, url)
    confirmed = service.history(unknown)
    assert [entry.type_name for entry in confirmed] == ["OrderPlaced", "PaymentConfirmed"]
    assert confirmed[-1].causation_id == str(too_early.id)
    assert queue_depth(sqs, dead_letter_url) == 1  # the wrong amount is wrong still
