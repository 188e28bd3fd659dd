-- Page and screen calls carry a name and a category (Segment's page(category, name) and
-- screen(name)): kept as columns of the events, "" for none and for the other event types.
ALTER TABLE {database}.events
    ADD COLUMN IF NOT EXISTS name String DEFAULT '',
    ADD COLUMN IF NOT EXISTS category LowCardinality(String) DEFAULT '';

-- Profiles count page and screen views by name and by category (segments read them as
-- page_views_by_name.<name> and so on).
ALTER TABLE {database}.profiles
    ADD COLUMN IF NOT EXISTS page_views_by_name Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS page_views_by_category Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS screen_views UInt64,
    ADD COLUMN IF NOT EXISTS screen_views_by_name Map(String, UInt64),
    ADD COLUMN IF NOT EXISTS screen_views_by_category Map(String, UInt64);

-- The half-hour slots of the customer's latest activity (epoch seconds): the typical interval
-- between visits is computed from them, whatever order the events arrive in.
ALTER TABLE {database}.profiles
    ADD COLUMN IF NOT EXISTS activity_slots Array(UInt32);

-- A view's columns are fixed when it is created: the two views are redefined (same queries)
-- so that they show the new columns.
CREATE OR REPLACE VIEW {database}.customer_events AS
SELECT
    if(link.user_id != '', link.user_id, e.customer_id) AS customer_id,
    e.customer_id AS key_id,
    e.* EXCEPT (customer_id)
FROM {database}.events AS e
LEFT ANY JOIN
(
    SELECT anonymous_id, user_id FROM {database}.identity_links FINAL WHERE state = 'merged'
) AS link ON e.customer_id = link.anonymous_id;

CREATE OR REPLACE VIEW {database}.customer_profiles AS
SELECT * FROM {database}.profiles FINAL WHERE merged_into = ''
