"""Read models as pure code: the view-store port, the runtime that feeds projections from the
notification log, the three order views with their queries, and rebuild by replay.

- :mod:`projections.ports`: the view-store port (rows, atomic commits with a position);
  :mod:`projections.memory` its in-memory reference store; :mod:`projections.codec` how
  stores keep row data as exact JSON.
- :mod:`projections.runtime`: ``Projection``, ``Runner`` (batches, coalescing, one atomic
  commit per batch with the tracked position), generations, read-your-writes waits.
- :mod:`projections.views`: order summary, orders by status, customer orders; ``OrderViews``.
- :mod:`projections.rebuild`: a new generation from the log, switched to atomically, verified.

Nothing here imports a technology: the SQLite and DynamoDB view stores are in ``adapters``.
"""
