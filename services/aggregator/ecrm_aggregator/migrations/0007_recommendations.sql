-- Product stock, from back-end Inventory Updated events: read with argMax(quantity, updated_at)
-- per product (on a cluster a product's rows can sit on several shards).
CREATE TABLE IF NOT EXISTS {database}.product_stock
(
    product_id String,
    quantity Int64,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY product_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.product_stock_from_events TO {database}.product_stock AS
SELECT JSONExtractString(properties, 'product_id') AS product_id, JSONExtractInt(properties, 'quantity') AS quantity,
       timestamp AS updated_at
FROM {database}.events
WHERE type = 'track' AND event = 'Inventory Updated';

-- Item-to-item similarities, recomputed now and then by the interaction service as a new
-- generation (its start, in ms); each product keeps its most similar products. Old
-- generations expire after a day.
CREATE TABLE IF NOT EXISTS {database}.item_similarity
(
    generation UInt64,
    item String,
    similar String,
    score Float64
)
ENGINE = MergeTree
ORDER BY (generation, item, similar)
TTL toDateTime(intDiv(generation, 1000)) + INTERVAL 1 DAY
