CREATE VIEW ecrm.customer_events
(
    `customer_id` String,
    `key_id` String,
    `message_id` String,
    `user_id` String,
    `anonymous_id` String,
    `type` LowCardinality(String),
    `event` LowCardinality(String),
    `timestamp` DateTime64(3, 'UTC'),
    `sent_at` Nullable(DateTime64(3, 'UTC')),
    `received_at` DateTime64(3, 'UTC'),
    `properties` String,
    `traits` String,
    `context` String,
    `source_partition` UInt16,
    `source_offset` UInt64,
    `inserted_at` DateTime64(3, 'UTC'),
    `name` String,
    `category` LowCardinality(String)
)
AS SELECT
    if(link.user_id != '', link.user_id, e.customer_id) AS customer_id,
    e.customer_id AS key_id,
    e.* EXCEPT customer_id
FROM ecrm.events AS e
ANY LEFT JOIN
(
    SELECT
        anonymous_id,
        user_id
    FROM ecrm.identity_links
    FINAL
    WHERE state = 'merged'
) AS link ON e.customer_id = link.anonymous_id

CREATE VIEW ecrm.customer_profiles
(
    `customer_id` String,
    `user_id` String,
    `anonymous_id` String,
    `email` String,
    `traits` String,
    `traits_updated_at` Nullable(DateTime64(3, 'UTC')),
    `first_seen` DateTime64(3, 'UTC'),
    `last_seen` DateTime64(3, 'UTC'),
    `event_count` UInt64,
    `event_counts` Map(String, UInt64),
    `page_views` UInt64,
    `orders` UInt64,
    `revenue` Decimal(18, 4),
    `email_sent` UInt64,
    `email_opened` UInt64,
    `email_clicked` UInt64,
    `email_bounced` UInt64,
    `surveys_answered` UInt64,
    `nps_latest` Nullable(UInt8),
    `nps_at` Nullable(DateTime64(3, 'UTC')),
    `version` UInt64,
    `source_partition` Int32,
    `source_offset` Int64,
    `updated_at` DateTime64(3, 'UTC'),
    `nps_previous` Nullable(UInt8),
    `first_order_at` Nullable(DateTime64(3, 'UTC')),
    `last_order_at` Nullable(DateTime64(3, 'UTC')),
    `refunded` Decimal(18, 4),
    `last_active_at` Nullable(DateTime64(3, 'UTC')),
    `typical_interval_days` Nullable(Float64),
    `engagement_raw` Float64,
    `engagement_at` Nullable(DateTime64(3, 'UTC')),
    `traits_as_of` Nullable(DateTime64(3, 'UTC')),
    `rfm_recency` Nullable(UInt8),
    `rfm_frequency` Nullable(UInt8),
    `rfm_monetary` Nullable(UInt8),
    `rfm_segment` LowCardinality(String),
    `engagement_score` UInt8,
    `nps_category` LowCardinality(String),
    `nps_trend` LowCardinality(String),
    `churn_ratio` Nullable(Float64),
    `churn_risk` LowCardinality(String),
    `lifecycle_stage` LowCardinality(String),
    `loyalty_points` UInt64,
    `loyalty_tier` LowCardinality(String),
    `merged_into` String,
    `positions` Map(UInt16, Int64),
    `recent_message_ids` Array(String),
    `page_views_by_name` Map(String, UInt64),
    `page_views_by_category` Map(String, UInt64),
    `screen_views` UInt64,
    `screen_views_by_name` Map(String, UInt64),
    `screen_views_by_category` Map(String, UInt64),
    `activity_slots` Array(UInt32)
)
AS SELECT *
FROM ecrm.profiles
FINAL
WHERE merged_into = ''

CREATE TABLE ecrm.events
(
    `message_id` String,
    `customer_id` String,
    `user_id` String,
    `anonymous_id` String,
    `type` LowCardinality(String),
    `event` LowCardinality(String),
    `timestamp` DateTime64(3, 'UTC'),
    `sent_at` Nullable(DateTime64(3, 'UTC')),
    `received_at` DateTime64(3, 'UTC'),
    `properties` String,
    `traits` String,
    `context` String,
    `source_partition` UInt16,
    `source_offset` UInt64,
    `inserted_at` DateTime64(3, 'UTC') DEFAULT now64(3),
    `name` String DEFAULT '',
    `category` LowCardinality(String) DEFAULT ''
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (customer_id, type, event, timestamp, message_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192, enable_block_number_column = 1, enable_block_offset_column = 1

CREATE TABLE ecrm.identity_links
(
    `anonymous_id` String,
    `user_id` String,
    `state` Enum8('merged' = 1, 'unmerged' = 2),
    `message_id` String,
    `changed_at` DateTime64(3, 'UTC'),
    `actor` String,
    `version` UInt64,
    `user_partition` Int32 DEFAULT -1,
    PROJECTION by_user
    (
        SELECT *
        ORDER BY user_id
    )
)
ENGINE = ReplacingMergeTree(version)
ORDER BY anonymous_id
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192, deduplicate_merge_projection_mode = 'rebuild', enable_block_number_column = 1, enable_block_offset_column = 1, lightweight_mutation_projection_mode = 'rebuild'

CREATE TABLE ecrm.identity_merges
(
    `at` DateTime64(3, 'UTC'),
    `action` Enum8('merged' = 1, 'refused' = 2, 'unmerged' = 3),
    `anonymous_id` String,
    `user_id` String,
    `message_id` String,
    `actor` String,
    `reason` String
)
ENGINE = ReplacingMergeTree
ORDER BY (anonymous_id, user_id, action, message_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192, enable_block_number_column = 1, enable_block_offset_column = 1

CREATE TABLE ecrm.item_similarity
(
    `generation` UInt64,
    `item` String,
    `similar` String,
    `score` Float64
)
ENGINE = MergeTree
ORDER BY (generation, item, similar)
TTL toDateTime(intDiv(generation, 1000)) + toIntervalDay(1)
SETTINGS index_granularity = 8192

CREATE TABLE ecrm.product_stock
(
    `product_id` String,
    `quantity` Int64,
    `updated_at` DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY product_id
SETTINGS index_granularity = 8192

CREATE MATERIALIZED VIEW ecrm.product_stock_from_events TO ecrm.product_stock
(
    `product_id` String,
    `quantity` Int64,
    `updated_at` DateTime64(3, 'UTC')
)
AS SELECT
    JSONExtractString(properties, 'product_id') AS product_id,
    JSONExtractInt(properties, 'quantity') AS quantity,
    timestamp AS updated_at
FROM ecrm.events
WHERE (type = 'track') AND (event = 'Inventory Updated')

CREATE TABLE ecrm.profiles
(
    `customer_id` String,
    `user_id` String,
    `anonymous_id` String,
    `email` String,
    `traits` String,
    `traits_updated_at` Nullable(DateTime64(3, 'UTC')),
    `first_seen` DateTime64(3, 'UTC'),
    `last_seen` DateTime64(3, 'UTC'),
    `event_count` UInt64,
    `event_counts` Map(String, UInt64),
    `page_views` UInt64,
    `orders` UInt64,
    `revenue` Decimal(18, 4),
    `email_sent` UInt64,
    `email_opened` UInt64,
    `email_clicked` UInt64,
    `email_bounced` UInt64,
    `surveys_answered` UInt64,
    `nps_latest` Nullable(UInt8),
    `nps_at` Nullable(DateTime64(3, 'UTC')),
    `version` UInt64,
    `source_partition` Int32,
    `source_offset` Int64,
    `updated_at` DateTime64(3, 'UTC') DEFAULT now64(3),
    `nps_previous` Nullable(UInt8),
    `first_order_at` Nullable(DateTime64(3, 'UTC')),
    `last_order_at` Nullable(DateTime64(3, 'UTC')),
    `refunded` Decimal(18, 4),
    `last_active_at` Nullable(DateTime64(3, 'UTC')),
    `typical_interval_days` Nullable(Float64),
    `engagement_raw` Float64,
    `engagement_at` Nullable(DateTime64(3, 'UTC')),
    `traits_as_of` Nullable(DateTime64(3, 'UTC')),
    `rfm_recency` Nullable(UInt8),
    `rfm_frequency` Nullable(UInt8),
    `rfm_monetary` Nullable(UInt8),
    `rfm_segment` LowCardinality(String),
    `engagement_score` UInt8,
    `nps_category` LowCardinality(String),
    `nps_trend` LowCardinality(String),
    `churn_ratio` Nullable(Float64),
    `churn_risk` LowCardinality(String),
    `lifecycle_stage` LowCardinality(String),
    `loyalty_points` UInt64,
    `loyalty_tier` LowCardinality(String),
    `merged_into` String,
    `positions` Map(UInt16, Int64),
    `recent_message_ids` Array(String),
    `page_views_by_name` Map(String, UInt64),
    `page_views_by_category` Map(String, UInt64),
    `screen_views` UInt64,
    `screen_views_by_name` Map(String, UInt64),
    `screen_views_by_category` Map(String, UInt64),
    `activity_slots` Array(UInt32)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY customer_id
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192, enable_block_number_column = 1, enable_block_offset_column = 1

CREATE TABLE ecrm.schema_migrations
(
    `version` UInt32,
    `name` String,
    `checksum` String,
    `applied_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY version
SETTINGS index_granularity = 8192

CREATE TABLE ecrm.segment_changes
(
    `at` DateTime64(3, 'UTC'),
    `segment_id` String,
    `segment_name` String,
    `customer_id` String,
    `change` Enum8('entered' = 1, 'exited' = 2),
    `trigger` LowCardinality(String),
    `reason` String,
    `event_id` String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (segment_id, customer_id, at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192, enable_block_number_column = 1, enable_block_offset_column = 1

CREATE TABLE ecrm.segment_definitions
(
    `segment_id` String,
    `name` String,
    `description` String,
    `definition` String,
    `deleted` UInt8,
    `updated_at` DateTime64(3, 'UTC'),
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY segment_id
SETTINGS index_granularity = 8192

CREATE VIEW ecrm.segment_members
(
    `segment_id` String,
    `customer_id` String,
    `member_since` DateTime64(3, 'UTC'),
    `reason` String
)
AS SELECT
    segment_id,
    customer_id,
    changed_at AS member_since,
    reason
FROM ecrm.segment_membership
FINAL
WHERE is_member = 1

CREATE TABLE ecrm.segment_membership
(
    `segment_id` String,
    `customer_id` String,
    `is_member` UInt8,
    `changed_at` DateTime64(3, 'UTC'),
    `reason` String,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_id, segment_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192, enable_block_number_column = 1, enable_block_offset_column = 1
