-- What computed traits need (activity, orders, refunds, engagement, the NPS before the
-- latest) and the computed traits themselves, as of the profile's last fold or timer.
ALTER TABLE {database}.profiles
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
    ADD COLUMN IF NOT EXISTS loyalty_tier LowCardinality(String)
