"""Erasure as a Dagster job: `forget`, with the person named in its run config.

Dagster keeps every run's config in its run storage, where no erasure reaches.
So the job takes only pseudonymous keys, a Customer ID or a record
(`source:id`); an email or phone is erased with `cdm forget`, which stores
nothing outside the warehouse.
"""

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.privacy.erasure import ErasureRequest, forget, rewrite_warehouse
from cdm_assets.wiring.keys import Namespace


class ForgetRequest(dg.Config):
    """Who to forget: exactly one of `customer_id` (cus_...) and `record` (source:id)."""

    customer_id: str | None = None
    record: str | None = None


def build_forget_job(config: CdmConfig, ns: Namespace) -> dg.JobDefinition:
    plan = resolve_plan(config)
    op_name = ns.name("erase_person")

    @dg.op(
        name=op_name,
        **ns.on_warehouse,
        description="Erase one person from every table and suppress them in later loads.",
    )
    def erase_person(context: dg.OpExecutionContext, config: ForgetRequest) -> None:
        keys = [(kind, value) for kind, value in (("customer", config.customer_id), ("record", config.record)) if value]
        if len(keys) != 1:
            raise dg.Failure("name exactly one of customer_id and record in the run config")
        warehouse = ns.warehouse_of(context)
        with warehouse.get_connection() as con:
            report = forget(con, plan, ErasureRequest(*keys[0]))
        rewrite_warehouse(warehouse.database)
        context.log.info(report.summary() + "; the warehouse file was rewritten")

    @dg.job(
        name=ns.name("forget"),
        description=f"Erase a person named by Customer ID or record (run config `ops.{op_name}.config`); "
        "rematerialise the assets afterwards, or let the next run do it.",
    )
    def forget_job() -> None:
        erase_person()

    return forget_job
