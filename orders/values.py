"""Value objects of the order domain: money, order lines, currencies, states and traces.

Every constructor here validates its input and raises ``OrderRuleError`` naming the rule broken,
so an invalid value never exists and never reaches an event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal
from uuid import uuid4

from babel.numbers import get_currency_precision

from orders.bounds import MAX_LINES, MAX_SKU, MAX_TRACE_ID, bounded_text
from orders.errors import OrderRuleError

MAX_DIGITS: Final = 15
"""The most digits (integer digits plus decimal places) of an amount or a quantity.

Every number with at most 15 significant digits survives a round trip through an IEEE 754
double, so a consumer that reads the published JSON numbers as doubles still gets them exactly.
"""

OrderState = Literal["pending", "paid", "shipped", "completed", "cancelled"]
"""The internal life-cycle state of an order; finer than the public ``OrderStatus``."""


class OrderStatus(StrEnum):
    """The status the public contract shows; each member equals (and prints as) its value."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


PUBLIC_STATUS: Final[dict[OrderState, OrderStatus]] = {
    "pending": OrderStatus.PENDING,
    "paid": OrderStatus.PROCESSING,
    "shipped": OrderStatus.PROCESSING,
    "completed": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
}
"""How each internal state is shown in the public contract."""

# Active ISO 4217 codes (funds and precious-metal codes left out on purpose).
ISO_4217_CURRENCIES: Final = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905 - a list literal of 157 codes would read worse
)


def money(value: object, *, name: str) -> Decimal:
    """``value`` as an exact, finite, non-negative ``Decimal``.

    Accepts ``Decimal`` and ``int``; refuses ``float`` (rule ``decimal-money``: binary floats
    cannot hold most prices exactly), every other type, NaN and infinities (``decimal-money``),
    negative amounts (``non-negative-money``) and amounts of more than ``MAX_DIGITS`` digits
    (``money-digits``).
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        hint = f"; pass Decimal({str(value)!r})" if isinstance(value, float) else ""
        raise OrderRuleError(
            "decimal-money",
            f"{name} must be a Decimal, not {type(value).__name__} {value!r}{hint}",
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise OrderRuleError("decimal-money", f"{name} must be a finite Decimal, not {amount}")
    if amount < 0:
        raise OrderRuleError("non-negative-money", f"{name} must be >= 0, not {amount}")
    return bounded_digits(amount.copy_abs(), name=name)  # copy_abs: -0 becomes 0


def digit_count(amount: Decimal) -> int:
    """The digits ``amount`` is written with: integer digits plus decimal places.

    ``Decimal("12.50")`` has 4, ``Decimal("0.001")`` 3, ``Decimal("1E+3")`` (1000) 4.
    """
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int), "only finite amounts have digits"
    return max(len(digits) + exponent, 0) + max(-exponent, 0)


def bounded_digits(amount: Decimal, *, name: str) -> Decimal:
    """``amount`` if it has at most ``MAX_DIGITS`` digits (rule ``money-digits``)."""
    if (count := digit_count(amount)) > MAX_DIGITS:
        raise OrderRuleError(
            "money-digits",
            f"{name} must have at most {MAX_DIGITS} digits (integer digits plus decimal "
            f"places) so that every consumer reads it exactly, not {amount} ({count} digits)",
        )
    return amount


def currency_code(value: object) -> str:
    """``value`` if it is an active ISO 4217 code (rule ``known-currency``)."""
    if not isinstance(value, str) or value not in ISO_4217_CURRENCIES:
        raise OrderRuleError(
            "known-currency", f"currency must be an ISO 4217 code such as EUR, not {value!r}"
        )
    return value


def minor_units(amount: Decimal, currency: str, *, name: str) -> Decimal:
    """``amount`` if it is a whole number of ``currency``'s minor units (rule
    ``currency-minor-units``): at most 2 decimal places in EUR, none in JPY, 3 in BHD, as
    Babel's copy of the CLDR currency table says (``babel.numbers.get_currency_precision``)."""
    places = get_currency_precision(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise OrderRuleError(
            "currency-minor-units",
            f"{name} {amount} {currency} has more than the currency's {places} decimal places",
        )
    return amount


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of an order: ``quantity`` (a positive ``int``) of ``sku`` at ``unit_price``.

    Rules: ``sku-required``, ``sku-length`` (at most ``MAX_SKU`` characters),
    ``text-printable``, ``positive-quantity`` (at most ``MAX_DIGITS`` digits too),
    ``decimal-money``, ``non-negative-money``, ``money-digits``.
    """

    sku: str
    quantity: int
    unit_price: Decimal

    def __post_init__(self) -> None:
        bounded_text(
            self.sku, rule="sku-required", length_rule="sku-length", name="sku", max_length=MAX_SKU
        )
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise OrderRuleError(
                "positive-quantity",
                f"quantity of {self.sku} must be an int, not {self.quantity!r}",
            )
        if not 0 < self.quantity < 10**MAX_DIGITS:
            raise OrderRuleError(
                "positive-quantity",
                f"quantity of {self.sku} must be > 0 and have at most {MAX_DIGITS} digits, "
                f"not {self.quantity}",
            )
        object.__setattr__(
            self, "unit_price", money(self.unit_price, name=f"unit_price of {self.sku}")
        )

    @classmethod
    def restored(cls, sku: str, quantity: int, unit_price: Decimal) -> OrderLine:
        """A line as it was stored, not validated again: it was when it was made (the
        library rebuilds stored events the same way, without running their ``__init__``)."""
        line = object.__new__(cls)
        object.__setattr__(line, "sku", sku)
        object.__setattr__(line, "quantity", quantity)
        object.__setattr__(line, "unit_price", unit_price)
        return line

    @property
    def subtotal(self) -> Decimal:
        """``quantity`` times ``unit_price``, exactly."""
        return self.quantity * self.unit_price

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku} @ {self.unit_price}"


@dataclass(frozen=True, slots=True)
class OrderLines:
    """The lines of one order, in the order given.

    Rules: ``at-least-one-line``, ``max-lines`` (at most ``MAX_LINES``), ``distinct-skus``
    (each sku once; change its quantity instead of repeating it), ``money-digits`` (the total
    has at most ``MAX_DIGITS`` digits).
    """

    items: tuple[OrderLine, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise OrderRuleError("at-least-one-line", "an order needs at least one line")
        if len(self.items) > MAX_LINES:
            raise OrderRuleError(
                "max-lines", f"an order has at most {MAX_LINES} lines, not {len(self.items)}"
            )
        skus = [line.sku for line in self.items]
        repeated = sorted({sku for sku in skus if skus.count(sku) > 1})
        if repeated:
            raise OrderRuleError("distinct-skus", f"skus appear more than once: {repeated}")
        bounded_digits(self.total, name="the order total")

    @classmethod
    def of(cls, lines: Sequence[OrderLine]) -> OrderLines:
        """The validated lines; each item must be an ``OrderLine`` (rule ``order-line``)."""
        for line in lines:
            if not isinstance(line, OrderLine):
                raise OrderRuleError("order-line", f"expected an OrderLine, not {line!r}")
        return cls(tuple(lines))

    @classmethod
    def restored(cls, items: tuple[OrderLine, ...]) -> OrderLines:
        """Lines as they were stored, not validated again (see ``OrderLine.restored``)."""
        lines = object.__new__(cls)
        object.__setattr__(lines, "items", items)
        return lines

    @property
    def total(self) -> Decimal:
        """The sum of the lines' subtotals."""
        return sum((line.subtotal for line in self.items), Decimal(0))

    def __iter__(self) -> Iterator[OrderLine]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __str__(self) -> str:
        return ", ".join(map(str, self.items))


@dataclass(frozen=True, slots=True)
class Trace:
    """Where a command came from: recorded on every event the command causes.

    ``correlation_id`` groups all the work of one business transaction; ``causation_id`` names
    the message (command or event) that caused this one, if known.
    """

    correlation_id: str
    causation_id: str | None = None

    @classmethod
    def of(cls, correlation_id: str | None = None, causation_id: str | None = None) -> Trace:
        """A trace with the given ids, generating a fresh correlation id when none is given.

        Rules: ``trace-id-required``, ``trace-id-length`` (at most ``MAX_TRACE_ID`` characters),
        ``text-printable``.
        """
        for name, value in (("correlation_id", correlation_id), ("causation_id", causation_id)):
            if value:
                bounded_text(
                    value,
                    rule="trace-id-required",
                    length_rule="trace-id-length",
                    name=name,
                    max_length=MAX_TRACE_ID,
                )
        return cls(correlation_id or str(uuid4()), causation_id)
