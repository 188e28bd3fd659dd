CREATE DATABASE IF NOT EXISTS ecrm ON CLUSTER ecrm_cluster;

CREATE TABLE IF NOT EXISTS ecrm.schema_migrations ON CLUSTER ecrm_cluster (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/ecrm/schema_migrations', '{replica}') ORDER BY version;

CREATE TABLE IF NOT EXISTS ecrm.events_local ON CLUSTER ecrm_cluster (
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/events_local', '{replica}')
PARTITION BY toYYYYMM(timestamp)
ORDER BY (customer_id, type, event, timestamp, message_id)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ecrm.events ON CLUSTER ecrm_cluster AS ecrm.events_local ENGINE = Distributed(ecrm_cluster, ecrm, events_local, cityHash64(customer_id));

CREATE TABLE IF NOT EXISTS ecrm.profiles_local ON CLUSTER ecrm_cluster (
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/profiles_local', '{replica}', version)
ORDER BY customer_id
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ecrm.profiles ON CLUSTER ecrm_cluster AS ecrm.profiles_local ENGINE = Distributed(ecrm_cluster, ecrm, profiles_local, cityHash64(customer_id));

ALTER TABLE ecrm.profiles_local ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS nps_previous Nullable(UInt8),
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

ALTER TABLE ecrm.profiles ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS nps_previous Nullable(UInt8),
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

CREATE TABLE IF NOT EXISTS ecrm.identity_links_local ON CLUSTER ecrm_cluster (
    anonymous_id String,
    user_id String,
    state Enum8('merged' = 1, 'unmerged' = 2),
    message_id String,
    changed_at DateTime64(3, 'UTC'),
    actor String,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/identity_links_local', '{replica}', version)
ORDER BY anonymous_id
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ecrm.identity_links ON CLUSTER ecrm_cluster AS ecrm.identity_links_local ENGINE = Distributed(ecrm_cluster, ecrm, identity_links_local, cityHash64(anonymous_id));

CREATE TABLE IF NOT EXISTS ecrm.identity_merges_local ON CLUSTER ecrm_cluster (
    at DateTime64(3, 'UTC'),
    action Enum8('merged' = 1, 'refused' = 2, 'unmerged' = 3),
    anonymous_id String,
    user_id String,
    message_id String,
    actor String,
    reason String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/identity_merges_local', '{replica}')
ORDER BY (anonymous_id, user_id, action, message_id)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ecrm.identity_merges ON CLUSTER ecrm_cluster AS ecrm.identity_merges_local ENGINE = Distributed(ecrm_cluster, ecrm, identity_merges_local, cityHash64(anonymous_id));

ALTER TABLE ecrm.profiles_local ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS merged_into String,
    ADD COLUMN IF NOT EXISTS positions Map(UInt16, Int64);

ALTER TABLE ecrm.profiles ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS merged_into String,
    ADD COLUMN IF NOT EXISTS positions Map(UInt16, Int64);

CREATE VIEW IF NOT EXISTS ecrm.customer_events ON CLUSTER ecrm_cluster AS
SELECT
    if(link.user_id != '', link.user_id, e.customer_id) AS customer_id,
    e.customer_id AS key_id,
    e.* EXCEPT (customer_id)
FROM ecrm.events AS e
GLOBAL LEFT ANY JOIN
(
    SELECT anonymous_id, user_id FROM ecrm.identity_links FINAL WHERE state = 'merged'
) AS link ON e.customer_id = link.anonymous_id;

CREATE VIEW IF NOT EXISTS ecrm.customer_profiles ON CLUSTER ecrm_cluster AS
SELECT * FROM ecrm.profiles FINAL WHERE merged_into = '';

CREATE TABLE IF NOT EXISTS ecrm.segment_definitions_local ON CLUSTER ecrm_cluster (
    segment_id String,
    name String,
    description String,
    definition String,
    deleted UInt8,
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/segment_definitions_local', '{replica}', version)
ORDER BY segment_id;

CREATE TABLE IF NOT EXISTS ecrm.segment_definitions ON CLUSTER ecrm_cluster AS ecrm.segment_definitions_local ENGINE = Distributed(ecrm_cluster, ecrm, segment_definitions_local, cityHash64(segment_id));

CREATE TABLE IF NOT EXISTS ecrm.segment_membership_local ON CLUSTER ecrm_cluster (
    segment_id String,
    customer_id String,
    is_member UInt8,
    changed_at DateTime64(3, 'UTC'),
    reason String,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/segment_membership_local', '{replica}', version)
ORDER BY (customer_id, segment_id)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ecrm.segment_membership ON CLUSTER ecrm_cluster AS ecrm.segment_membership_local ENGINE = Distributed(ecrm_cluster, ecrm, segment_membership_local, cityHash64(customer_id));

CREATE TABLE IF NOT EXISTS ecrm.segment_changes_local ON CLUSTER ecrm_cluster (
    at DateTime64(3, 'UTC'),
    segment_id String,
    segment_name String,
    customer_id String,
    change Enum8('entered' = 1, 'exited' = 2),
    trigger LowCardinality(String),
    reason String,
    event_id String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/segment_changes_local', '{replica}')
PARTITION BY toYYYYMM(at)
ORDER BY (segment_id, customer_id, at, event_id)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ecrm.segment_changes ON CLUSTER ecrm_cluster AS ecrm.segment_changes_local ENGINE = Distributed(ecrm_cluster, ecrm, segment_changes_local, cityHash64(customer_id));

CREATE VIEW IF NOT EXISTS ecrm.segment_members ON CLUSTER ecrm_cluster AS
SELECT segment_id, customer_id, changed_at AS member_since, reason
FROM ecrm.segment_membership FINAL
WHERE is_member = 1;

ALTER TABLE ecrm.profiles_local ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS recent_message_ids Array(String);

ALTER TABLE ecrm.profiles ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS recent_message_ids Array(String);

ALTER TABLE ecrm.identity_links_local ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS user_partition Int32 DEFAULT -1;

ALTER TABLE ecrm.identity_links ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS user_partition Int32 DEFAULT -1;

ALTER TABLE ecrm.identity_links_local ON CLUSTER ecrm_cluster     MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE ecrm.identity_links_local ON CLUSTER ecrm_cluster     ADD PROJECTION IF NOT EXISTS by_user (SELECT * ORDER BY user_id);

ALTER TABLE ecrm.identity_links_local ON CLUSTER ecrm_cluster     MATERIALIZE PROJECTION by_user;

CREATE TABLE IF NOT EXISTS ecrm.product_stock_local ON CLUSTER ecrm_cluster (
    product_id String,
    quantity Int64,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/product_stock_local', '{replica}', updated_at)
ORDER BY product_id;

CREATE TABLE IF NOT EXISTS ecrm.product_stock ON CLUSTER ecrm_cluster AS ecrm.product_stock_local ENGINE = Distributed(ecrm_cluster, ecrm, product_stock_local, cityHash64(product_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS ecrm.product_stock_from_events_local ON CLUSTER ecrm_cluster TO ecrm.product_stock_local AS
SELECT JSONExtractString(properties, 'product_id') AS product_id, JSONExtractInt(properties, 'quantity') AS quantity,
       timestamp AS updated_at
FROM ecrm.events_local
WHERE type = 'track' AND event = 'Inventory Updated';

CREATE TABLE IF NOT EXISTS ecrm.item_similarity_local ON CLUSTER ecrm_cluster (
    generation UInt64,
    item String,
    similar String,
    score Float64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/ecrm/item_similarity_local', '{replica}')
ORDER BY (generation, item, similar)
TTL toDateTime(intDiv(generation, 1000)) + INTERVAL 1 DAY;

CREATE TABLE IF NOT EXISTS ecrm.item_similarity ON CLUSTER ecrm_cluster AS ecrm.item_similarity_local ENGINE = Distributed(ecrm_cluster, ecrm, item_similarity_local, cityHash64(item));

ALTER TABLE ecrm.events_local ON CLUSTER ecrm_cluster     MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.profiles_local ON CLUSTER ecrm_cluster     MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.identity_links_local ON CLUSTER ecrm_cluster     MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1,
                   lightweight_mutation_projection_mode = 'rebuild';

ALTER TABLE ecrm.identity_merges_local ON CLUSTER ecrm_cluster     MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.segment_membership_local ON CLUSTER ecrm_cluster     MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.segment_changes_local ON CLUSTER ecrm_cluster     MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE ecrm.events_local ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS name String DEFAULT '',
    ADD COLUMN IF NOT EXISTS category LowCardinality(String) DEFAULT '';

ALTER TABLE ecrm.events ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS name String DEFAULT '',
    ADD COLUMN IF NOT EXISTS category LowCardinality(String) DEFAULT '';

ALTER TABLE ecrm.profiles_local ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS page_views_by_name Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS page_views_by_category Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS screen_views UInt64,
    ADD COLUMN IF NOT EXISTS screen_views_by_name Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS screen_views_by_category Map(String, UInt64);

ALTER TABLE ecrm.profiles ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS page_views_by_name Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS page_views_by_category Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS screen_views UInt64,
    ADD COLUMN IF NOT EXISTS screen_views_by_name Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS screen_views_by_category Map(String, UInt64);

ALTER TABLE ecrm.profiles_local ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS activity_slots Array(UInt32);

ALTER TABLE ecrm.profiles ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS activity_slots Array(UInt32);

CREATE OR REPLACE VIEW ecrm.customer_events ON CLUSTER ecrm_cluster AS
SELECT
    if(link.user_id != '', link.user_id, e.customer_id) AS customer_id,
    e.customer_id AS key_id,
    e.* EXCEPT (customer_id)
FROM ecrm.events AS e
GLOBAL LEFT ANY JOIN
(
    SELECT anonymous_id, user_id FROM ecrm.identity_links FINAL WHERE state = 'merged'
) AS link ON e.customer_id = link.anonymous_id;

CREATE OR REPLACE VIEW ecrm.customer_profiles ON CLUSTER ecrm_cluster AS
SELECT * FROM ecrm.profiles FINAL WHERE merged_into = '';

CREATE TABLE IF NOT EXISTS ecrm.business_events_local ON CLUSTER ecrm_cluster (
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ecrm/business_events_local', '{replica}')
PARTITION BY toYYYYMM(timestamp)
ORDER BY (event, timestamp, customer_id, message_id)
SETTINGS replicated_deduplication_window = 1000, enable_block_number_column = 1,
         enable_block_offset_column = 1;

CREATE TABLE IF NOT EXISTS ecrm.business_events ON CLUSTER ecrm_cluster AS ecrm.business_events_local ENGINE = Distributed(ecrm_cluster, ecrm, business_events_local, cityHash64(customer_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS ecrm.business_events_from_events_local ON CLUSTER ecrm_cluster TO ecrm.business_events_local AS
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
FROM ecrm.events_local
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

CREATE TABLE IF NOT EXISTS ecrm.customer_activity_local ON CLUSTER ecrm_cluster (
    customer_id String,
    days AggregateFunction(groupBitmap, UInt16),
    weeks AggregateFunction(groupBitmap, UInt16),
    months AggregateFunction(groupBitmap, UInt16),
    first_at SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/ecrm/customer_activity_local', '{replica}')
ORDER BY customer_id
SETTINGS replicated_deduplication_window = 1000, enable_block_number_column = 1,
         enable_block_offset_column = 1;

CREATE TABLE IF NOT EXISTS ecrm.customer_activity ON CLUSTER ecrm_cluster AS ecrm.customer_activity_local ENGINE = Distributed(ecrm_cluster, ecrm, customer_activity_local, cityHash64(customer_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS ecrm.customer_activity_from_events_local ON CLUSTER ecrm_cluster TO ecrm.customer_activity_local AS
SELECT customer_id, groupBitmapState(toUInt16(toDate(timestamp))) AS days,
       groupBitmapState(toUInt16(toMonday(timestamp))) AS weeks,
       groupBitmapState(toUInt16(toStartOfMonth(timestamp))) AS months, min(timestamp) AS first_at
FROM ecrm.events_local
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

CREATE TABLE IF NOT EXISTS ecrm.email_messages_local ON CLUSTER ecrm_cluster (
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/ecrm/email_messages_local', '{replica}')
ORDER BY email_id
SETTINGS replicated_deduplication_window = 1000, enable_block_number_column = 1,
         enable_block_offset_column = 1;

CREATE TABLE IF NOT EXISTS ecrm.email_messages ON CLUSTER ecrm_cluster AS ecrm.email_messages_local ENGINE = Distributed(ecrm_cluster, ecrm, email_messages_local, cityHash64(customer_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS ecrm.email_messages_from_business_events_local ON CLUSTER ecrm_cluster TO ecrm.email_messages_local AS
SELECT email_id, any(customer_id) AS customer_id, max(rule_id) AS rule_id, max(campaign_id) AS campaign_id,
       max(variant) AS variant, min(timestamp) AS first_at, max(event = 'Email Delivered') AS delivered,
       max(event = 'Email Opened') AS opened_any, max(event = 'Email Opened' AND NOT machine_open) AS human_open,
       max(event = 'Email Link Clicked') AS clicked, max(event = 'Email Bounced' AND bounce_type = 'hard') AS hard,
       max(event = 'Email Bounced' AND bounce_type != 'hard') AS soft, max(event = 'Unsubscribed') AS unsubscribed,
       max(event = 'Email Marked as Spam') AS complained
FROM ecrm.business_events_local
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

ALTER TABLE ecrm.events_local ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS utm_campaign LowCardinality(String) MATERIALIZED JSONExtractString(context, 'campaign', 'name');

ALTER TABLE ecrm.events ON CLUSTER ecrm_cluster     ADD COLUMN IF NOT EXISTS utm_campaign LowCardinality(String) MATERIALIZED JSONExtractString(context, 'campaign', 'name');

ALTER TABLE ecrm.events_local ON CLUSTER ecrm_cluster     MATERIALIZE COLUMN utm_campaign;
