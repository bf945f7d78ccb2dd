-- Recency, frequency and monetary value of every customer with an order, each scored 1-5
-- by quintile (5: the most recent, most frequent, highest spending fifth). Money is counted
-- in the customer's main currency (the one of most orders) and scored within that currency.
with per_currency as (
    select customer_id, currency, sum(signed_amount) as net, count(*) filter (where type = 'order') as orders
    from {{ source('cdm', 'transactions') }}
    where customer_id is not null
    group by all
),

main_currency as (
    select
        customer_id,
        arg_max(struct_pack(currency := currency, net := net), struct_pack(o := orders, c := currency)) as main
    from per_currency
    group by customer_id
),

ordering as (
    select m.customer_id, m.days_since_last_order, m.orders, c.main.currency as currency, c.main.net as net_revenue
    from {{ source('cdm', 'customer_metrics') }} as m
    inner join main_currency as c using (customer_id)
    where m.orders > 0
)

select
    customer_id,
    days_since_last_order,
    orders,
    currency,
    net_revenue,
    ntile(5) over (order by days_since_last_order desc, customer_id) as recency_score,
    ntile(5) over (order by orders, customer_id) as frequency_score,
    ntile(5) over (partition by currency order by net_revenue, customer_id) as monetary_score
from ordering
