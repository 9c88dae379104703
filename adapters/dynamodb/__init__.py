"""DynamoDB persistence module for ``eventsourcing`` 9.5: ``PERSISTENCE_MODULE=adapters.dynamodb``.

Any ``eventsourcing`` application runs on it by configuration alone::

    app = Application(env={"PERSISTENCE_MODULE": "adapters.dynamodb",
                           "DYNAMODB_TABLE_NAME": "orders-events"})

Settings (read from the application's environment, so ``ORDERSERVICE_DYNAMODB_TABLE_NAME``
overrides ``DYNAMODB_TABLE_NAME`` for an application named ``OrderService``):

``DYNAMODB_TABLE_NAME`` (required)
    The table. Every recorder of every application shares it; keys are namespaced by the
    application's name and the recorder's purpose (see :mod:`adapters.dynamodb.items`).
``DYNAMODB_CREATE_TABLE`` (default ``no``)
    ``y`` creates the table if it is missing (development). In production the table is
    declared in infrastructure as code from :func:`~adapters.dynamodb.table.table_definition`:
    ``pk`` string hash key, ``sk`` number range key, on-demand billing, no indexes.
``DYNAMODB_WRITE_MODE`` (default ``transactional``)
    ``transactional``: a save's transaction also numbers its events in the notification log
    (synchronous, gapless ids; every save goes through one log-head item, so writers in many
    processes queue there). ``indexed``: a save writes only its stream (one ``PutItem`` for a
    1-event save, 1 WCU) and :mod:`adapters.dynamodb.indexer` appends the events to the same
    log from the table's DynamoDB Stream (``orders indexer run``, or its Lambda handler);
    ids appear once the indexer has caught up. A table keeps the mode it was written in: the
    first save records it, and a writer in the other mode is refused (``WriteModeError``).
``DYNAMODB_POLL_INTERVAL`` (default ``1.0``)
    Seconds between a subscription's reads of the log for saves made by other processes
    (saves through the same recorder wake it at once).
``DYNAMODB_RETRY_MODE`` (default ``standard``), ``DYNAMODB_MAX_ATTEMPTS`` (default ``5``)
    botocore's retry mode (``standard`` or ``adaptive``) and total attempts per call, for
    throttling and transient errors; the store has no retry loop of its own for them.
``DYNAMODB_CONNECT_TIMEOUT`` (default ``2``), ``DYNAMODB_READ_TIMEOUT`` (default ``10``)
    botocore's connect and read timeouts in seconds (never its 60 s defaults).
``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` / ``AWS_REGION``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``
    The standard variables, passed to boto3 when the application's environment has them;
    otherwise boto3 resolves them itself (``os.environ``, profiles, roles). So the same code
    runs on AWS, DynamoDB Local or moto.

Nothing connects at import time. To inject a client, build
``DynamoDBFactory(env, client=client)`` or a :class:`DynamoDBDatastore` and the recorders
directly; ``datastore.metrics`` counts every call (:mod:`adapters.dynamodb.metrics`).

Key design (one table; :mod:`adapters.dynamodb.items` has the item layout)
--------------------------------------------------------------------------
Transactional mode:

- A stream is a head item holding its last version (Equinox's "tip") and batch items, each
  holding as many consecutive events of one save as fit in 400 KB, keyed by last version.
  The version check is on the head, so it holds however saves were cut into batches.
- The notification log is a log-head item holding the last id, and log batch items keyed
  by last id, holding a copy of each event with its originator id. A save writes its
  stream items, log items and the log-head update in one transaction.
- Payloads are stored twice (stream batch and log batch). A pointer design (log items
  naming stream batches) saves the second copy's write but costs every log read a second
  round trip (``BatchGetItem``) and capacity on both sides. Order commands save a few small
  events, and an item's write is charged per started KB, so the copy costs nothing extra
  for them (the pointer item would be charged the same 1 KB); it doubles the write cost of
  saves above 1 KB and halves the largest save (about 2 MB of events per transaction).
- Snapshots (``aggregate_recorder("snapshots")``) live in their own namespace, one item per
  snapshot keyed by version, with no head and no log: a snapshot of any version not taken
  yet is accepted, in any order (two processes may snapshot versions 4 and 6 of one order in
  either order), as on Postgres.
- Tracking is one item per upstream application, updated only forwards.

Indexed mode: each event is an item of its own keyed by its version (a save based on any
stored version collides with the next one's item: an exact expected-version check in one
request, no head, no item shared between streams); a save of several events is one
``TransactWriteItems`` of one put per event (at most 100). The indexer writes the log items
(many events each), one "indexed version" item per stream and the log head with its
checkpoint, in one transaction per batch (see :mod:`adapters.dynamodb.indexer`).

Cost of each operation (transactional writes: 2 WCU per started KB of each item;
strongly consistent reads: 1 RCU per started 4 KB read; every read is strongly consistent)
------------------------------------------------------------------------------------------
=========================  ============================  =====================================
operation                  round trips                   items and capacity
=========================  ============================  =====================================
save, transactional mode   1 ``TransactWriteItems``;     per stream 1 head + 1 batch per
of n events in k streams   +1 per race lost for the      400 KB; 1 log batch per 400 KB; 1 log
                           log head (the head's value    head; (+1 tracking). Typical order
                           comes back with the           command (1 stream, small events): 4
                           cancellation, no read);       items, 8 WCU. Limits: 100 actions,
                           +1 ``GetItem`` after a        4 MB, 400 KB per item, checked before
                           ``TransactionConflict``       sending.
save, indexed mode         1 ``PutItem`` (1 event);       1 item per event: 1 WCU per started
                           1 ``TransactWriteItems``      KB alone, 2 in a transaction; no log
                           (several events)              (the indexer writes it)
indexer write of n events  1 ``TransactWriteItems``      log batches (2 WCU per KB), 1 item
in k streams               (+1 ``GetRecords`` per poll)  per stream and the head (2 WCU each)
snapshot save              1 ``PutItem``                 1 item: 1 WCU per started KB
``select_events``          1 ``Query`` (per 1 MB page);  the batches read, 1 RCU per 4 KB;
                           +1 ``Query`` (1 item) when    ``gt`` is exact on the key, so a
                           ``lte`` is given              load after a snapshot reads only the
                                                         tail
``select_notifications``   1 ``Query`` per page          the log batches read, 1 RCU per 4 KB
``max_notification_id``    1 ``GetItem``                 1 RCU
``insert_tracking``        1 ``UpdateItem``              1 WCU
``max_tracking_id``        1 ``GetItem``                 1 RCU
view update + tracking     1 ``TransactWriteItems``      2 WCU per KB of each item
subscription               1 ``select_notifications``    as above, when idle: 1 RCU per poll
                           per local save and per poll
=========================  ============================  =====================================

Throughput: in the transactional mode every save updates the one log-head item, so saves of
one application are serialised there (as Postgres serialises them with a table lock for
gapless ids); a single item takes about 1,000 WCU/s, so on the order of a few hundred saves
per second at best. The indexed mode has no such item on the write path; its indexer writes
the head once per write of as many whole saves as fit in 100 actions and 4 MB.
"""

from adapters.dynamodb.datastore import DynamoDBDatastore
from adapters.dynamodb.factory import DynamoDBFactory
from adapters.dynamodb.indexed import (
    DynamoDBIndexedApplicationRecorder,
    DynamoDBIndexedProcessRecorder,
)
from adapters.dynamodb.metrics import DynamoDBMetrics, MetricsSnapshot, OperationCount
from adapters.dynamodb.recorders import (
    DynamoDBAggregateRecorder,
    DynamoDBTrackingRecorder,
    StreamConflictError,
    WriteModeError,
)
from adapters.dynamodb.table import DynamoDBLimitError, table_definition
from adapters.dynamodb.transactional import (
    DynamoDBApplicationRecorder,
    DynamoDBProcessRecorder,
    DynamoDBSubscription,
)

Factory = DynamoDBFactory

__all__ = [
    "DynamoDBAggregateRecorder",
    "DynamoDBApplicationRecorder",
    "DynamoDBDatastore",
    "DynamoDBFactory",
    "DynamoDBIndexedApplicationRecorder",
    "DynamoDBIndexedProcessRecorder",
    "DynamoDBLimitError",
    "DynamoDBMetrics",
    "DynamoDBProcessRecorder",
    "DynamoDBSubscription",
    "DynamoDBTrackingRecorder",
    "Factory",
    "MetricsSnapshot",
    "OperationCount",
    "StreamConflictError",
    "WriteModeError",
    "table_definition",
]
