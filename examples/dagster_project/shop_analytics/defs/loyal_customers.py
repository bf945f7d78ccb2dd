"""The project's own asset, built on the marts of its cdm instance `customers`."""

import dagster as dg

# the warehouse resource of the instance under the prefix `customers` (CdmComponent names it)
WAREHOUSE = "duckdb_customers"


@dg.asset(
    key=["shop", "loyal_customers"],
    deps=[dg.AssetKey(["customers", "marts", "customer_metrics"])],
    required_resource_keys={WAREHOUSE},
    pool="duckdb",
    group_name="shop",
)
def loyal_customers(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Customers with three or more orders, counted from cdm's customer metrics."""
    with getattr(context.resources, WAREHOUSE).get_connection() as con:
        (count,) = con.execute("SELECT count(*) FROM marts.customer_metrics WHERE orders >= 3").fetchone()
    return dg.MaterializeResult(metadata={"loyal_customers": count})
