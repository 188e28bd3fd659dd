import pytest
from aggregator_factories import event, record

from ecrm_aggregator.batch_writer import BatchWriter, TooManyInvalid


def test_a_mostly_invalid_batch_stops_the_worker_before_any_write() -> None:
    # No store or producer: the guard must trip before any I/O is attempted.
    writer = BatchWriter(store=None, producer=None, max_invalid_ratio=0.5)  # type: ignore[arg-type]
    records = [record(b"{broken", i) for i in range(60)] + [record(event("page"), 60 + i) for i in range(40)]
    with pytest.raises(TooManyInvalid, match="60 of 100"):
        writer.process(records)
