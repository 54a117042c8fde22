"""``luser payments ...``: reconciliation and refund settlement from the command line
(cron, or by hand)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, datetime

import click

from app.commerce.reconcile import ReconcileReport
from luser_db.cli import cli_errors, env_option

__all__ = ["payments_group"]


@click.group("payments")
def payments_group() -> None:
    """Payments: reconcile pending orders with Alipay / WeChat Pay."""


@payments_group.command("reconcile")
@click.option(
    "--loop", is_flag=True, help="Keep running, one pass every payment.reconcile_interval_seconds."
)
@env_option
@cli_errors
def reconcile_cmd(loop: bool) -> None:
    """Query pending payments at the provider, apply what it reports, close expired orders."""
    asyncio.run(_reconcile(loop))


async def _reconcile(loop: bool) -> None:
    import luser_db
    from app.commerce.service import Commerce
    from app.lifespan import init_database
    from app.settings import AppConfig
    from luser_common.tasks import every
    from luser_config import load_config

    config = load_config(schema=AppConfig)
    commerce = Commerce.build(config)
    if not commerce.providers.names():
        click.echo("没有启用的支付渠道 (payment.alipay.enabled / payment.wechat.enabled)")
        return
    init_database(config)

    async def one_pass() -> None:
        _echo(await commerce.reconciler.run_once())

    try:
        if not loop:
            await one_pass()
            return
        interval = config.payment.reconcile_interval_seconds
        await every(interval, one_pass, name="payment-reconciliation", first=0)
    finally:
        await luser_db.close()


@payments_group.command("settle-refunds")
@env_option
@cli_errors
def settle_refunds_cmd() -> None:
    """Query refunds left processing at their provider and settle what it reports."""
    asyncio.run(_settle_refunds())


async def _settle_refunds() -> None:
    import luser_db
    from app.commerce.service import Commerce
    from app.lifespan import init_database
    from app.settings import AppConfig
    from luser_config import load_config

    config = load_config(schema=AppConfig)
    commerce = Commerce.build(config)
    if not commerce.providers.names():
        click.echo("没有启用的支付渠道 (payment.alipay.enabled / payment.wechat.enabled)")
        return
    init_database(config)
    try:
        settled = await commerce.refunds.settle_processing()
    finally:
        await luser_db.close()
    click.echo(f"退款查询完成: settled={settled}")


@payments_group.command("reconcile-bill")
@click.option(
    "--provider", type=click.Choice(["alipay", "wechat"]), required=True, help="Payment channel."
)
@click.option(
    "--date",
    "bill_date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    required=True,
    help="The bill's Beijing date, YYYY-MM-DD.",
)
@env_option
@cli_errors
def reconcile_bill_cmd(provider: str, bill_date: datetime) -> None:
    """Download the day's bill, reconcile it with local payments and refunds, store both."""
    asyncio.run(_reconcile_bill(provider, bill_date.date()))


async def _reconcile_bill(provider: str, bill_date: date) -> None:
    import luser_db
    from app.commerce.service import Commerce
    from app.lifespan import init_database
    from app.settings import AppConfig
    from luser_config import load_config

    config = load_config(schema=AppConfig)
    commerce = Commerce.build(config)
    commerce.providers.get(provider)  # NotFound (a clear error) before any I/O
    init_database(config)
    try:
        report = await commerce.reconciler.reconcile_bill(provider, bill_date)
    finally:
        await luser_db.close()
    click.echo(
        f"账单对账完成: provider={provider} date={bill_date} bill_id={report.bill_id}"
        f" rows={report.rows} missing={report.count('missing')} extra={report.count('extra')}"
        f" mismatch={report.count('mismatch')}"
    )
    for finding in report.findings:
        no = finding.out_refund_no or finding.out_trade_no
        click.echo(
            f"  {finding.kind} {finding.row_type} {no}"
            f" local_fen={finding.local_fen} bill_fen={finding.bill_fen}"
        )


def _echo(report: ReconcileReport) -> None:
    fields = dataclasses.asdict(report)
    click.echo("对账完成: " + ", ".join(f"{k}={v}" for k, v in fields.items()))
