-- Reports read the business events (orders, refunds, email, surveys, cases, loyalty) with their
-- properties already taken out of the JSON, sorted by event and time: a report over a year of
-- orders reads the order rows only, a few narrow columns, instead of every event's properties.
-- Filled from the events by a materialized view (a block the events table drops as a
-- duplicate insert never reaches it); redeliveries with new block boundaries collapse on the
-- message id when parts merge, as in the events table. customer_id is the id the event was sent
-- with (the reports map anonymous ids to their user through identity_links).
CREATE TABLE IF NOT EXISTS {database}.business_events
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

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.business_events_from_events TO {database}.business_events AS
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
FROM {database}.events
WHERE type = 'track' AND event IN ('Order Completed', 'Order Refunded', 'Email Sent', 'Email Delivered',
    'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed',
    'Survey Answered', 'NPS Answered', 'Case Opened', 'Case Escalated', 'Case Updated', 'Case Resolved',
    'Loyalty Points Awarded', 'Reward Issued', 'Message Suppressed', 'Message Failed');

-- The events stored before this migration (a row the view has written too collapses with it).
INSERT INTO {database}.business_events
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
FROM {database}.events
WHERE type = 'track' AND event IN ('Order Completed', 'Order Refunded', 'Email Sent', 'Email Delivered',
    'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed',
    'Survey Answered', 'NPS Answered', 'Case Opened', 'Case Escalated', 'Case Updated', 'Case Resolved',
    'Loyalty Points Awarded', 'Reward Issued', 'Message Suppressed', 'Message Failed')
;

-- Each customer's active days, weeks (their Mondays) and months (their first days), as bitmaps
-- of day numbers, and its first activity: retention and lifecycle read one row per customer instead of every event.
-- Active means the customer did something: what the interaction service, the email channel
-- and the shop's stock system report about us (sends, deliveries, bounces, cases, points,
-- stock) is not the customer's activity, nor is a machine open (a mail client's prefetch).
CREATE TABLE IF NOT EXISTS {database}.customer_activity
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

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.customer_activity_from_events TO {database}.customer_activity AS
SELECT customer_id, groupBitmapState(toUInt16(toDate(timestamp))) AS days,
       groupBitmapState(toUInt16(toMonday(timestamp))) AS weeks,
       groupBitmapState(toUInt16(toStartOfMonth(timestamp))) AS months, min(timestamp) AS first_at
FROM {database}.events
WHERE NOT (type = 'track' AND event IN ('Email Sent', 'Email Delivered', 'Email Bounced', 'Inventory Updated',
    'Message Suppressed', 'Message Deferred', 'Message Failed', 'Action Completed', 'Case Opened', 'Case Escalated',
    'Case Updated', 'Case Resolved', 'Loyalty Points Awarded', 'Reward Issued'))
  AND NOT (type = 'track' AND event = 'Email Opened' AND JSONExtractBool(properties, 'machine_open'))
GROUP BY customer_id;

-- The events stored before this migration.
INSERT INTO {database}.customer_activity
SELECT customer_id, groupBitmapState(toUInt16(toDate(timestamp))) AS days,
       groupBitmapState(toUInt16(toMonday(timestamp))) AS weeks,
       groupBitmapState(toUInt16(toStartOfMonth(timestamp))) AS months, min(timestamp) AS first_at
FROM {database}.events
WHERE NOT (type = 'track' AND event IN ('Email Sent', 'Email Delivered', 'Email Bounced', 'Inventory Updated',
    'Message Suppressed', 'Message Deferred', 'Message Failed', 'Action Completed', 'Case Opened', 'Case Escalated',
    'Case Updated', 'Case Resolved', 'Loyalty Points Awarded', 'Reward Issued'))
  AND NOT (type = 'track' AND event = 'Email Opened' AND JSONExtractBool(properties, 'machine_open'))
GROUP BY customer_id;

-- Each email message once, with what happened to it (each state a flag that, once set, stays):
-- the campaign report reads a row per message instead of every email event. Filled from the
-- business events (a materialized view reading another's target).
CREATE TABLE IF NOT EXISTS {database}.email_messages
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

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.email_messages_from_business_events TO {database}.email_messages AS
SELECT email_id, any(customer_id) AS customer_id, max(rule_id) AS rule_id, max(campaign_id) AS campaign_id,
       max(variant) AS variant, min(timestamp) AS first_at, max(event = 'Email Delivered') AS delivered,
       max(event = 'Email Opened') AS opened_any, max(event = 'Email Opened' AND NOT machine_open) AS human_open,
       max(event = 'Email Link Clicked') AS clicked, max(event = 'Email Bounced' AND bounce_type = 'hard') AS hard,
       max(event = 'Email Bounced' AND bounce_type != 'hard') AS soft, max(event = 'Unsubscribed') AS unsubscribed,
       max(event = 'Email Marked as Spam') AS complained
FROM {database}.business_events
WHERE event IN ('Email Sent', 'Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced',
    'Email Marked as Spam', 'Unsubscribed') AND email_id != ''
GROUP BY email_id;

-- The messages stored before this migration.
INSERT INTO {database}.email_messages
SELECT email_id, any(customer_id) AS customer_id, max(rule_id) AS rule_id, max(campaign_id) AS campaign_id,
       max(variant) AS variant, min(timestamp) AS first_at, max(event = 'Email Delivered') AS delivered,
       max(event = 'Email Opened') AS opened_any, max(event = 'Email Opened' AND NOT machine_open) AS human_open,
       max(event = 'Email Link Clicked') AS clicked, max(event = 'Email Bounced' AND bounce_type = 'hard') AS hard,
       max(event = 'Email Bounced' AND bounce_type != 'hard') AS soft, max(event = 'Unsubscribed') AS unsubscribed,
       max(event = 'Email Marked as Spam') AS complained
FROM {database}.business_events
WHERE event IN ('Email Sent', 'Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced',
    'Email Marked as Spam', 'Unsubscribed') AND email_id != ''
GROUP BY email_id;

-- The campaign (utm_campaign) of every event, taken out of its context as it is stored: a
-- funnel by campaign reads this column instead of every event's context. Parts stored before
-- this migration get it when the mutation rewrites them (until then it is computed on read).
ALTER TABLE {database}.events
    ADD COLUMN IF NOT EXISTS utm_campaign LowCardinality(String) MATERIALIZED JSONExtractString(context, 'campaign', 'name');

ALTER TABLE {database}.events
    MATERIALIZE COLUMN utm_campaign
