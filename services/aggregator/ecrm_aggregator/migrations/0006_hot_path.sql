-- Profiles keep their customer's latest message ids, so a client's retry of an event is
-- recognised without looking the id up in the events table.
ALTER TABLE {database}.profiles
    ADD COLUMN IF NOT EXISTS recent_message_ids Array(String);

-- Links know the partition the user's own events arrive on, where the anonymous id's later
-- events are forwarded (ecrm.events.stitched) so that one worker folds each profile.
ALTER TABLE {database}.identity_links
    ADD COLUMN IF NOT EXISTS user_partition Int32 DEFAULT -1;

-- Links are read by user as often as by anonymous id: a projection sorted by user_id makes
-- both look-ups read only the rows they need.
ALTER TABLE {database}.identity_links
    MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE {database}.identity_links
    ADD PROJECTION IF NOT EXISTS by_user (SELECT * ORDER BY user_id);

ALTER TABLE {database}.identity_links
    MATERIALIZE PROJECTION by_user
