-- Every event, once: ReplacingMergeTree on the message id collapses redeliveries, and the
-- deduplication window drops a re-sent insert block with the same token.
CREATE TABLE IF NOT EXISTS {database}.events
(
    message_id String,
    customer_id String,
    user_id String,
    anonymous_id String,
    type LowCardinality(String),
    event LowCardinality(String),
    timestamp DateTime64(3, 'UTC'),
    sent_at Nullable(DateTime64(3, 'UTC')),
    received_at DateTime64(3, 'UTC'),
    properties String,
    traits String,
    context String,
    source_partition UInt16,
    source_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (customer_id, type, event, timestamp, message_id)
SETTINGS non_replicated_deduplication_window = 1000
