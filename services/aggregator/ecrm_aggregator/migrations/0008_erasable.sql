-- Erasure (GDPR/CCPA) touches little: with block numbers and offsets kept in every part, a
-- DELETE in lightweight-update mode writes a small patch part that masks the customer's rows,
-- instead of rewriting the parts that hold them; merges drop the rows for good later.
-- Every table that names a customer gets it (the events are ordered by customer first, so a
-- customer's rows are found from the primary index). The links' projection by user is rebuilt
-- for the parts a deletion touches.
ALTER TABLE {database}.events
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE {database}.profiles
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE {database}.identity_links
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1,
                   lightweight_mutation_projection_mode = 'rebuild';

ALTER TABLE {database}.identity_merges
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE {database}.segment_membership
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1;

ALTER TABLE {database}.segment_changes
    MODIFY SETTING enable_block_number_column = 1, enable_block_offset_column = 1
