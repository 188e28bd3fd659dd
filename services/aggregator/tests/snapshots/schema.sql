CREATE TABLE ecrm.business_events
(
    `event` LowCardinality(String),
    `timestamp` DateTime64(3, 'UTC'),
    `customer_id` String,
    `message_id` String,
    `amount` Float64,
    `currency` LowCardinality(String),
    `order_id` String,
    `email_id` String,
    `rule_id` String,
    `campaign_id` String,
    `variant` LowCardinality(String),
    `template` LowCardinality(String),
    `link_url` String,
    `bounce_type` LowCardinality(String),
    `machine_open` UInt8,
    `score` Int16,
    `survey_id` String,
    `question_id` String,
    `answer` String,
    `case_id` String,
    `priority` LowCardinality(String),
    `status` LowCardinality(String),
    `tier` LowCardinality(String),
    `kind` LowCardinality(String),
    `reason` String,
    `utm_source` LowCardinality(String),
    `utm_medium` LowCardinality(String),
    `utm_campaign` String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (event, timestamp, customer_id, message_id)
SETTINGS non_replicated_deduplication_window = 1000, enable_block_number_column = 1, enable_block_offset_column = 1, index_granularity = 8192

CREATE MATERIALIZED VIEW ecrm.business_events_from_events TO ecrm.business_events
(
    `event` LowCardinality(String),
    `timestamp` DateTime64(3, 'UTC'),
    `customer_id` String,
    `message_id` String,
    `amount` Float64,
    `currency` String,
    `order_id` String,
    `email_id` String,
    `rule_id` String,
    `campaign_id` String,
    `variant` String,
    `template` String,
    `link_url` String,
    `bounce_type` String,
    `machine_open` UInt8,
    `score` Int16,
    `survey_id` String,
    `question_id` String,
    `answer` String,
    `case_id` String,
    `priority` String,
    `status` String,
    `tier` String,
    `kind` String,
    `reason` String,
    `utm_source` String,
    `utm_medium` String,
    `utm_campaign` String
)
AS SELECT
    event,
    timestamp,
    customer_id,
    message_id,
    multiIf((event = 'Order Completed') AND JSONHas(properties, 'revenue'), JSONExtractFloat(properties, 'revenue'), (event IN ('Order Completed', 'Order Refunded')), JSONExtractFloat(properties, 'total'), event = 'Loyalty Points Awarded', toFloat64(JSONExtractInt(properties, 'points')), 0) AS amount,
    JSONExtractString(properties, 'currency') AS currency,
    JSONExtractString(properties, 'order_id') AS order_id,
    JSONExtractString(properties, 'email_id') AS email_id,
    JSONExtractString(properties, 'rule_id') AS rule_id,
    JSONExtractString(properties, 'campaign_id') AS campaign_id,
    JSONExtractString(properties, 'variant') AS variant,
    JSONExtractString(properties, 'template') AS template,
    JSONExtractString(properties, 'link_url') AS link_url,
    JSONExtractString(properties, 'bounce_type') AS bounce_type,
    JSONExtractBool(properties, 'machine_open') AS machine_open,
    if(JSONHas(properties, 'score'), toInt16(JSONExtractInt(properties, 'score')), -1) AS score,
    JSONExtractString(properties, 'survey_id') AS survey_id,
    JSONExtractString(properties, 'question_id') AS question_id,
    if(event = 'Survey Answered', JSONExtractRaw(properties, 'answer'), '') AS answer,
    JSONExtractString(properties, 'case_id') AS case_id,
    JSONExtractString(properties, 'priority') AS priority,
    JSONExtractString(properties, 'status') AS status,
    JSONExtractString(properties, 'tier') AS tier,
    JSONExtractString(properties, 'kind') AS kind,
    JSONExtractString(properties, 'reason') AS reason,
    JSONExtractString(context, 'campaign', 'source') AS utm_source,
    JSONExtractString(context, 'campaign', 'medium') AS utm_medium,
    JSONExtractString(context, 'campaign', 'name') AS utm_campaign
FROM ecrm.events
WHERE (type = 'track') AND (event IN ('Order Completed', 'Order Refunded', 'Email Sent', 'Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed', 'Survey Answered', 'NPS Answered', 'Case Opened', 'Case Escalated', 'Case Updated', 'Case Resolved', 'Loyalty Points Awarded', 'Reward Issued', 'Message Suppressed', 'Message Failed'))

CREATE TABLE ecrm.customer_activity
(
    `customer_id` String,
    `days` AggregateFunction(groupBitmap, UInt16),
    `weeks` AggregateFunction(groupBitmap, UInt16),
    `months` AggregateFunction(groupBitmap, UInt16),
    `first_at` SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY customer_id
SETTINGS non_replicated_deduplication_window = 1000, enable_block_number_column = 1, enable_block_offset_column = 1, index_granularity = 8192

CREATE MATERIALIZED VIEW ecrm.customer_activity_from_events TO ecrm.customer_activity
(
    `customer_id` String,
    `days` AggregateFunction(groupBitmap, UInt16),
    `weeks` AggregateFunction(groupBitmap, UInt16),
    `months` AggregateFunction(groupBitmap, UInt16),
    `first_at` DateTime64(3, 'UTC')
)
AS SELECT
    customer_id,
    groupBitmapState(toUInt16(toDate(timestamp))) AS days,
    groupBitmapState(toUInt16(toMonday(timestamp))) AS weeks,
    groupBitmapState(toUInt16(toStartOfMonth(timestamp))) AS months,
    min(timestamp) AS first_at
FROM ecrm.events
WHERE (NOT ((type = 'track') AND (event IN ('Email Sent', 'Email Delivered', 'Email Bounced', 'Inventory Updated', 'Message Suppressed', 'Message Deferred', 'Message Failed', 'Action Completed', 'Case Opened', 'Case Escalated', 'Case Updated', 'Case Resolved', 'Loyalty Points Awarded', 'Reward Issued')))) AND (NOT ((type = 'track') AND (event = 'Email Opened') AND JSONExtractBool(properties, 'machine_open')))
GROUP BY customer_id

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

CREATE TABLE ecrm.email_messages
(
    `email_id` String,
    `customer_id` SimpleAggregateFunction(any, String),
    `rule_id` SimpleAggregateFunction(max, String),
    `campaign_id` SimpleAggregateFunction(max, String),
    `variant` SimpleAggregateFunction(max, String),
    `first_at` SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    `delivered` SimpleAggregateFunction(max, UInt8),
    `opened_any` SimpleAggregateFunction(max, UInt8),
    `human_open` SimpleAggregateFunction(max, UInt8),
    `clicked` SimpleAggregateFunction(max, UInt8),
    `hard` SimpleAggregateFunction(max, UInt8),
    `soft` SimpleAggregateFunction(max, UInt8),
    `unsubscribed` SimpleAggregateFunction(max, UInt8),
    `complained` SimpleAggregateFunction(max, UInt8)
)
ENGINE = AggregatingMergeTree
ORDER BY email_id
SETTINGS non_replicated_deduplication_window = 1000, enable_block_number_column = 1, enable_block_offset_column = 1, index_granularity = 8192

CREATE MATERIALIZED VIEW ecrm.email_messages_from_business_events TO ecrm.email_messages
(
    `email_id` String,
    `customer_id` String,
    `rule_id` String,
    `campaign_id` String,
    `variant` String,
    `first_at` DateTime64(3, 'UTC'),
    `delivered` UInt8,
    `opened_any` UInt8,
    `human_open` UInt8,
    `clicked` UInt8,
    `hard` UInt8,
    `soft` UInt8,
    `unsubscribed` UInt8,
    `complained` UInt8
)
AS SELECT
    email_id,
    any(customer_id) AS customer_id,
    max(rule_id) AS rule_id,
    max(campaign_id) AS campaign_id,
    max(variant) AS variant,
    min(timestamp) AS first_at,
    max(event = 'Email Delivered') AS delivered,
    max(event = 'Email Opened') AS opened_any,
    max((event = 'Email Opened') AND (NOT machine_open)) AS human_open,
    max(event = 'Email Link Clicked') AS clicked,
    max((event = 'Email Bounced') AND (bounce_type = 'hard')) AS hard,
    max((event = 'Email Bounced') AND (bounce_type != 'hard')) AS soft,
    max(event = 'Unsubscribed') AS unsubscribed,
    max(event = 'Email Marked as Spam') AS complained
FROM ecrm.business_events
WHERE (event IN ('Email Sent', 'Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed')) AND (email_id != '')
GROUP BY email_id

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
    `category` LowCardinality(String) DEFAULT '',
    `utm_campaign` LowCardinality(String) MATERIALIZED JSONExtractString(context, 'campaign', 'name')
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
