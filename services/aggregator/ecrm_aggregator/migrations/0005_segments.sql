-- Segments: the definitions the aggregator follows, who is in each segment now (one row per
-- segment and customer, the latest version wins) and every entry and exit.
CREATE TABLE IF NOT EXISTS {database}.segment_definitions
(
    segment_id String,
    name String,
    description String,
    definition String,
    deleted UInt8,
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY segment_id;

CREATE TABLE IF NOT EXISTS {database}.segment_membership
(
    segment_id String,
    customer_id String,
    is_member UInt8,
    changed_at DateTime64(3, 'UTC'),
    reason String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_id, segment_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.segment_changes
(
    at DateTime64(3, 'UTC'),
    segment_id String,
    segment_name String,
    customer_id String,
    change Enum8('entered' = 1, 'exited' = 2),
    trigger LowCardinality(String),
    reason String,
    event_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (segment_id, customer_id, at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Who is in each segment now, and since when.
CREATE VIEW IF NOT EXISTS {database}.segment_members AS
SELECT segment_id, customer_id, changed_at AS member_since, reason
FROM {database}.segment_membership FINAL
WHERE is_member = 1
