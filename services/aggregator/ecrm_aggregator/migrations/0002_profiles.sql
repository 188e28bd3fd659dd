-- One row per customer and version; read with FINAL (or argMax) for the latest profile.
CREATE TABLE IF NOT EXISTS {database}.profiles
(
    customer_id String,
    user_id String,
    anonymous_id String,
    email String,
    traits String,
    traits_updated_at Nullable(DateTime64(3, 'UTC')),
    first_seen DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC'),
    event_count UInt64,
    event_counts Map(String, UInt64),
    page_views UInt64,
    orders UInt64,
    revenue Decimal(18, 4),
    email_sent UInt64,
    email_opened UInt64,
    email_clicked UInt64,
    email_bounced UInt64,
    surveys_answered UInt64,
    nps_latest Nullable(UInt8),
    nps_at Nullable(DateTime64(3, 'UTC')),
    version UInt64,
    source_partition Int32,
    source_offset Int64,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY customer_id
SETTINGS non_replicated_deduplication_window = 1000
