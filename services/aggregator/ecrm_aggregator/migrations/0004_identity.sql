-- Identity stitching: which anonymous id belongs to which known user (one row per anonymous
-- id, the latest version wins), and the log of every merge, refusal and undo.
CREATE TABLE IF NOT EXISTS {database}.identity_links
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

CREATE TABLE IF NOT EXISTS {database}.identity_merges
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

-- Profiles learn where they were merged into and their Kafka position per partition (a
-- stitched customer's events come from the partitions of several keys).
ALTER TABLE {database}.profiles
    ADD COLUMN IF NOT EXISTS merged_into String,
    ADD COLUMN IF NOT EXISTS positions Map(UInt16, Int64);

-- Events with the customer they belong to now: an anonymous visitor's events count toward
-- the user they were stitched to. key_id is the id the event was sent with.
CREATE VIEW IF NOT EXISTS {database}.customer_events AS
SELECT
    if(link.user_id != '', link.user_id, e.customer_id) AS customer_id,
    e.customer_id AS key_id,
    e.* EXCEPT (customer_id)
FROM {database}.events AS e
LEFT ANY JOIN
(
    SELECT anonymous_id, user_id FROM {database}.identity_links FINAL WHERE state = 'merged'
) AS link ON e.customer_id = link.anonymous_id;

-- The current profile of every customer, merged anonymous profiles left out.
CREATE VIEW IF NOT EXISTS {database}.customer_profiles AS
SELECT * FROM {database}.profiles FINAL WHERE merged_into = ''
