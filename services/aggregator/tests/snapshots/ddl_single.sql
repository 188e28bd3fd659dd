CREATE DATABASE IF NOT EXISTS ecrm;

CREATE TABLE IF NOT EXISTS ecrm.schema_migrations (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version;

CREATE TABLE IF NOT EXISTS ecrm.events
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
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ecrm.profiles
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
SETTINGS non_replicated_deduplication_window = 1000;

ALTER TABLE ecrm.profiles
    ADD COLUMN IF NOT EXISTS nps_previous Nullable(UInt8),
    ADD COLUMN IF NOT EXISTS first_order_at Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS last_order_at Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS refunded Decimal(18, 4),
    ADD COLUMN IF NOT EXISTS last_active_at Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS typical_interval_days Nullable(Float64),
    ADD COLUMN IF NOT EXISTS engagement_raw Float64,
    ADD COLUMN IF NOT EXISTS engagement_at Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS traits_as_of Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS rfm_recency Nullable(UInt8),
    ADD COLUMN IF NOT EXISTS rfm_frequency Nullable(UInt8),
    ADD COLUMN IF NOT EXISTS rfm_monetary Nullable(UInt8),
    ADD COLUMN IF NOT EXISTS rfm_segment LowCardinality(String),
    ADD COLUMN IF NOT EXISTS engagement_score UInt8,
    ADD COLUMN IF NOT EXISTS nps_category LowCardinality(String),
    ADD COLUMN IF NOT EXISTS nps_trend LowCardinality(String),
    ADD COLUMN IF NOT EXISTS churn_ratio Nullable(Float64),
    ADD COLUMN IF NOT EXISTS churn_risk LowCardinality(String),
    ADD COLUMN IF NOT EXISTS lifecycle_stage LowCardinality(String),
    ADD COLUMN IF NOT EXISTS loyalty_points UInt64,
    ADD COLUMN IF NOT EXISTS loyalty_tier LowCardinality(String);

CREATE TABLE IF NOT EXISTS ecrm.identity_links
(
    anonymous_id String,
    user_id String,
    state Enum8('merged' = 1, 'unmerged' = 2),
    message_id String,
    changed_at DateTime64(3, 'UTC'),
    actor String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY anonymous_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ecrm.identity_merges
(
    at DateTime64(3, 'UTC'),
    action Enum8('merged' = 1, 'refused' = 2, 'unmerged' = 3),
    anonymous_id String,
    user_id String,
    message_id String,
    actor String,
    reason String
)
ENGINE = ReplacingMergeTree
ORDER BY (anonymous_id, user_id, action, message_id)
SETTINGS non_replicated_deduplication_window = 1000;

ALTER TABLE ecrm.profiles
    ADD COLUMN IF NOT EXISTS merged_into String,
    ADD COLUMN IF NOT EXISTS positions Map(UInt16, Int64);

CREATE VIEW IF NOT EXISTS ecrm.customer_events AS
SELECT
    if(link.user_id != '', link.user_id, e.customer_id) AS customer_id,
    e.customer_id AS key_id,
    e.* EXCEPT (customer_id)
FROM ecrm.events AS e
LEFT ANY JOIN
(
    SELECT anonymous_id, user_id FROM ecrm.identity_links FINAL WHERE state = 'merged'
) AS link ON e.customer_id = link.anonymous_id;

CREATE VIEW IF NOT EXISTS ecrm.customer_profiles AS
SELECT * FROM ecrm.profiles FINAL WHERE merged_into = '';

CREATE TABLE IF NOT EXISTS ecrm.segment_definitions
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

CREATE TABLE IF NOT EXISTS ecrm.segment_membership
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

CREATE TABLE IF NOT EXISTS ecrm.segment_changes
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

CREATE VIEW IF NOT EXISTS ecrm.segment_members AS
SELECT segment_id, customer_id, changed_at AS member_since, reason
FROM ecrm.segment_membership FINAL
WHERE is_member = 1;

ALTER TABLE ecrm.profiles
    ADD COLUMN IF NOT EXISTS recent_message_ids Array(String);

ALTER TABLE ecrm.identity_links
    ADD COLUMN IF NOT EXISTS user_partition Int32 DEFAULT -1;

ALTER TABLE ecrm.identity_links
    MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE ecrm.identity_links
    ADD PROJECTION IF NOT EXISTS by_user (SELECT * ORDER BY user_id);

ALTER TABLE ecrm.identity_links
    MATERIALIZE PROJECTION by_user;

CREATE TABLE IF NOT EXISTS ecrm.product_stock
(
    product_id String,
    quantity Int64,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY product_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS ecrm.product_stock_from_events TO ecrm.product_stock AS
SELECT JSONExtractString(properties, 'product_id') AS product_id, JSONExtractInt(properties, 'quantity') AS quantity,
       timestamp AS updated_at
FROM ecrm.events
WHERE type = 'track' AND event = 'Inventory Updated';

CREATE TABLE IF NOT EXISTS ecrm.item_similarity
(
    generation UInt64,
    item String,
    similar String,
    score Float64
)
ENGINE = MergeTree
ORDER BY (generation, item, similar)
TTL toDateTime(intDiv(generation, 1000)) + INTERVAL 1 DAY;

ALTER TABLE ecrm.events
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.profiles
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.identity_links
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1,
                   lightweight_mutation_projection_mode = 'rebuild';

ALTER TABLE ecrm.identity_merges
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.segment_membership
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.segment_changes
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.events
    ADD COLUMN IF NOT EXISTS name String DEFAULT '',
    ADD COLUMN IF NOT EXISTS category LowCardinality(String) DEFAULT '';

ALTER TABLE ecrm.profiles
    ADD COLUMN IF NOT EXISTS page_views_by_name Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS page_views_by_category Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS screen_views UInt64,
    ADD COLUMN IF NOT EXISTS screen_views_by_name Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS screen_views_by_category Map(String, UInt64);

ALTER TABLE ecrm.profiles
    ADD COLUMN IF NOT EXISTS activity_slots Array(UInt32);

CREATE OR REPLACE VIEW ecrm.customer_events AS
SELECT
    if(link.user_id != '', link.user_id, e.customer_id) AS customer_id,
    e.customer_id AS key_id,
    e.* EXCEPT (customer_id)
FROM ecrm.events AS e
LEFT ANY JOIN
(
    SELECT anonymous_id, user_id FROM ecrm.identity_links FINAL WHERE state = 'merged'
) AS link ON e.customer_id = link.anonymous_id;

CREATE OR REPLACE VIEW ecrm.customer_profiles AS
SELECT * FROM ecrm.profiles FINAL WHERE merged_into = '';

CREATE TABLE IF NOT EXISTS ecrm.business_events
(
    event LowCardinality(String),
    timestamp DateTime64(3, 'UTC'),
    customer_id String,
    message_id String,
    amount Float64,
    currency LowCardinality(String),
    order_id String,
    email_id String,
    rule_id String,
    campaign_id String,
    variant LowCardinality(String),
    template LowCardinality(String),
    link_url String,
    bounce_type LowCardinality(String),
    machine_open UInt8,
    score Int16,
    survey_id String,
    question_id String,
    answer String,
    case_id String,
    priority LowCardinality(String),
    status LowCardinality(String),
    tier LowCardinality(String),
    kind LowCardinality(String),
    reason String,
    utm_source LowCardinality(String),
    utm_medium LowCardinality(String),
    utm_campaign String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (event, timestamp, customer_id, message_id)
SETTINGS non_replicated_deduplication_window = 1000, enable_block_number_column = 1,
         enable_block_offset_column = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ecrm.business_events_from_events TO ecrm.business_events AS
SELECT event, timestamp, customer_id, message_id,
       multiIf(event = 'Order Completed' AND JSONHas(properties, 'revenue'), JSONExtractFloat(properties, 'revenue'),
               event IN ('Order Completed', 'Order Refunded'), JSONExtractFloat(properties, 'total'),
               event = 'Loyalty Points Awarded', toFloat64(JSONExtractInt(properties, 'points')),
               0) AS amount,
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
WHERE type = 'track' AND event IN ('Order Completed', 'Order Refunded', 'Email Sent', 'Email Delivered',
    'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed',
    'Survey Answered', 'NPS Answered', 'Case Opened', 'Case Escalated', 'Case Updated', 'Case Resolved',
    'Loyalty Points Awarded', 'Reward Issued', 'Message Suppressed', 'Message Failed');

INSERT INTO ecrm.business_events
SELECT event, timestamp, customer_id, message_id,
       multiIf(event = 'Order Completed' AND JSONHas(properties, 'revenue'), JSONExtractFloat(properties, 'revenue'),
               event IN ('Order Completed', 'Order Refunded'), JSONExtractFloat(properties, 'total'),
               event = 'Loyalty Points Awarded', toFloat64(JSONExtractInt(properties, 'points')),
               0) AS amount,
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
WHERE type = 'track' AND event IN ('Order Completed', 'Order Refunded', 'Email Sent', 'Email Delivered',
    'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed',
    'Survey Answered', 'NPS Answered', 'Case Opened', 'Case Escalated', 'Case Updated', 'Case Resolved',
    'Loyalty Points Awarded', 'Reward Issued', 'Message Suppressed', 'Message Failed');

CREATE TABLE IF NOT EXISTS ecrm.customer_activity
(
    customer_id String,
    days AggregateFunction(groupBitmap, UInt16),
    weeks AggregateFunction(groupBitmap, UInt16),
    months AggregateFunction(groupBitmap, UInt16),
    first_at SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY customer_id
SETTINGS non_replicated_deduplication_window = 1000, enable_block_number_column = 1,
         enable_block_offset_column = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ecrm.customer_activity_from_events TO ecrm.customer_activity AS
SELECT customer_id, groupBitmapState(toUInt16(toDate(timestamp))) AS days,
       groupBitmapState(toUInt16(toMonday(timestamp))) AS weeks,
       groupBitmapState(toUInt16(toStartOfMonth(timestamp))) AS months, min(timestamp) AS first_at
FROM ecrm.events
WHERE NOT (type = 'track' AND event IN ('Email Sent', 'Email Delivered', 'Email Bounced', 'Inventory Updated',
    'Message Suppressed', 'Message Deferred', 'Message Failed', 'Action Completed', 'Case Opened', 'Case Escalated',
    'Case Updated', 'Case Resolved', 'Loyalty Points Awarded', 'Reward Issued'))
  AND NOT (type = 'track' AND event = 'Email Opened' AND JSONExtractBool(properties, 'machine_open'))
GROUP BY customer_id;

INSERT INTO ecrm.customer_activity
SELECT customer_id, groupBitmapState(toUInt16(toDate(timestamp))) AS days,
       groupBitmapState(toUInt16(toMonday(timestamp))) AS weeks,
       groupBitmapState(toUInt16(toStartOfMonth(timestamp))) AS months, min(timestamp) AS first_at
FROM ecrm.events
WHERE NOT (type = 'track' AND event IN ('Email Sent', 'Email Delivered', 'Email Bounced', 'Inventory Updated',
    'Message Suppressed', 'Message Deferred', 'Message Failed', 'Action Completed', 'Case Opened', 'Case Escalated',
    'Case Updated', 'Case Resolved', 'Loyalty Points Awarded', 'Reward Issued'))
  AND NOT (type = 'track' AND event = 'Email Opened' AND JSONExtractBool(properties, 'machine_open'))
GROUP BY customer_id;

CREATE TABLE IF NOT EXISTS ecrm.email_messages
(
    email_id String,
    customer_id SimpleAggregateFunction(any, String),
    rule_id SimpleAggregateFunction(max, String),
    campaign_id SimpleAggregateFunction(max, String),
    variant SimpleAggregateFunction(max, String),
    first_at SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    delivered SimpleAggregateFunction(max, UInt8),
    opened_any SimpleAggregateFunction(max, UInt8),
    human_open SimpleAggregateFunction(max, UInt8),
    clicked SimpleAggregateFunction(max, UInt8),
    hard SimpleAggregateFunction(max, UInt8),
    soft SimpleAggregateFunction(max, UInt8),
    unsubscribed SimpleAggregateFunction(max, UInt8),
    complained SimpleAggregateFunction(max, UInt8)
)
ENGINE = AggregatingMergeTree
ORDER BY email_id
SETTINGS non_replicated_deduplication_window = 1000, enable_block_number_column = 1,
         enable_block_offset_column = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ecrm.email_messages_from_business_events TO ecrm.email_messages AS
SELECT email_id, any(customer_id) AS customer_id, max(rule_id) AS rule_id, max(campaign_id) AS campaign_id,
       max(variant) AS variant, min(timestamp) AS first_at, max(event = 'Email Delivered') AS delivered,
       max(event = 'Email Opened') AS opened_any, max(event = 'Email Opened' AND NOT machine_open) AS human_open,
       max(event = 'Email Link Clicked') AS clicked, max(event = 'Email Bounced' AND bounce_type = 'hard') AS hard,
       max(event = 'Email Bounced' AND bounce_type != 'hard') AS soft, max(event = 'Unsubscribed') AS unsubscribed,
       max(event = 'Email Marked as Spam') AS complained
FROM ecrm.business_events
WHERE event IN ('Email Sent', 'Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced',
    'Email Marked as Spam', 'Unsubscribed') AND email_id != ''
GROUP BY email_id;

INSERT INTO ecrm.email_messages
SELECT email_id, any(customer_id) AS customer_id, max(rule_id) AS rule_id, max(campaign_id) AS campaign_id,
       max(variant) AS variant, min(timestamp) AS first_at, max(event = 'Email Delivered') AS delivered,
       max(event = 'Email Opened') AS opened_any, max(event = 'Email Opened' AND NOT machine_open) AS human_open,
       max(event = 'Email Link Clicked') AS clicked, max(event = 'Email Bounced' AND bounce_type = 'hard') AS hard,
       max(event = 'Email Bounced' AND bounce_type != 'hard') AS soft, max(event = 'Unsubscribed') AS unsubscribed,
       max(event = 'Email Marked as Spam') AS complained
FROM ecrm.business_events
WHERE event IN ('Email Sent', 'Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced',
    'Email Marked as Spam', 'Unsubscribed') AND email_id != ''
GROUP BY email_id;

ALTER TABLE ecrm.events
    ADD COLUMN IF NOT EXISTS utm_campaign LowCardinality(String) MATERIALIZED JSONExtractString(context, 'campaign', 'name');

ALTER TABLE ecrm.events
    MATERIALIZE COLUMN utm_campaign;
