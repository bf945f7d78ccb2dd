-- Customers by segment (from their recency and frequency scores), with their net revenue per currency.
with scored as (
    select
        customer_id,
        currency,
        net_revenue,
        case
            when recency_score >= 4 and frequency_score >= 4 then 'champions'
            when recency_score >= 3 and frequency_score >= 3 then 'loyal'
            when recency_score >= 4 then 'new or returning'
            when recency_score <= 2 and frequency_score >= 3 then 'at risk'
            else 'hibernating'
        end as segment
    from {{ ref('rfm_scores') }}
)

select segment, currency, count(*) as customers, sum(net_revenue) as net_revenue
from scored
group by segment, currency
