"""The payment stand-ins in sandbox mode: a cashier a person (or a test) can pay at.

- Alipay page/WAP pay: the pay URL the service hands out is the stand-in's
  ``gateway.do?...`` (as with Alipay itself); opening it checks the URL's RSA2
  signature and shows a Chinese cashier page. Its "支付" button marks the trade
  paid and POSTs an Alipay-signed notification to the notify URL in the pay URL.
- WeChat Pay native: ``code_url`` is an HTTP page of the stand-in instead of
  ``weixin://``; "scanning" it (opening it and pressing "支付") marks the trade
  paid and POSTs a signed, AES-GCM encrypted v3 notification to the notify URL.

Queries, closes and refunds (and so reconciliation) are the test stubs' own,
signature-checked on the way in and signed on the way out.
"""

from __future__ import annotations

import html
import json
import secrets
import urllib.parse
from typing import Any

from app.sandbox.delivery import post
from app.sandbox.payments import AlipayStub, WechatPayStub, _alipay_unsigned
from app.settings import AlipayConfig, WechatPayConfig

__all__ = ["SandboxAlipay", "SandboxWechat", "page"]

PAGE_PAY_METHODS = ("alipay.trade.page.pay", "alipay.trade.wap.pay")
HTML = {"Content-Type": "text/html; charset=utf-8"}

Reply = tuple[int, dict[str, str], bytes]


def page(title: str, body: str, status: int = 200) -> Reply:
    """A small Chinese HTML page (``body`` is already escaped HTML)."""
    text = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em}"
        "button{font-size:1.2em;padding:.5em 2em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}"
        "<p><small>沙箱环境: 不会产生真实扣款</small></p></body></html>"
    )
    return status, dict(HTML), text.encode()


def _pay_form(action: str, fields: dict[str, str]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in fields.items()
    )
    return (
        f'<form method="post" action="{html.escape(action)}">{hidden}'
        '<button type="submit" id="pay">支付</button></form>'
    )


def _outcome(delivered: bool, status: int, reply: str, return_url: str = "") -> Reply:
    if not delivered:
        detail = html.escape(f"HTTP {status}: {reply[:200]}" if status else reply[:200])
        return page("支付通知发送失败", f"<p>服务未确认通知 ({detail})</p>", 502)
    back = f'<p><a href="{html.escape(return_url)}">返回商户</a></p>' if return_url else ""
    return page("支付成功", f'<p id="result">支付成功, 已通知商户。</p>{back}')


class SandboxAlipay(AlipayStub):
    """Alipay's gateway: the cashier for page/WAP pay, the signed APIs for the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.notify_url = ""
        # out_trade_no -> where to notify and return, as the pay URL said (not ledger fields)
        self.checkouts: dict[str, dict[str, str]] = {}

    def sandbox_config(self, service_url: str) -> AlipayConfig:
        """The ``[payment.alipay]`` section aimed at this stand-in."""
        self.notify_url = f"{service_url}/api/payments/notify/alipay"
        # The cashier's "返回商户" link leads the buyer back to their orders on the site.
        return self.config(notify_url=self.notify_url, return_url=f"{service_url}/me/orders")

    def _dispatch(self, method: str, path: str, headers: dict[str, str], body: str) -> Reply:
        parts = urllib.parse.urlsplit(path)
        if method == "GET" and parts.path == "/gateway.do":
            params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
            if params.get("method") in PAGE_PAY_METHODS:
                return self._cashier(params)
        if method == "POST" and parts.path == "/cashier/pay":
            form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
            return self._pay(form.get("out_trade_no", ""))
        return super()._dispatch(method, path, headers, body)

    def _cashier(self, params: dict[str, str]) -> Reply:
        signed = {k: v for k, v in params.items() if k != "sign"}
        if not self.app_keys.verify(_alipay_unsigned(signed, ()), params.get("sign", "")):
            return page("支付请求无效", "<p>签名验证失败 (isv.invalid-signature)</p>", 400)
        biz = json.loads(params.get("biz_content") or "{}")
        trade = self.accept_pay_url("?" + urllib.parse.urlencode(params))
        with self._lock:
            self.checkouts[trade["out_trade_no"]] = {
                "notify_url": params.get("notify_url") or self.notify_url,
                "return_url": params.get("return_url", ""),
            }
        if trade["trade_status"] != "WAIT_BUYER_PAY":
            return page("支付宝收银台 (沙箱)", "<p>该交易已支付或已关闭。</p>", 409)
        body = (
            f"<p>商品: {html.escape(str(biz.get('subject', '')))}</p>"
            f'<p>金额: <strong id="amount">¥{html.escape(trade["total_amount"])}</strong></p>'
            f"<p>订单号: {html.escape(trade['out_trade_no'])}</p>"
            + _pay_form("/cashier/pay", {"out_trade_no": trade["out_trade_no"]})
        )
        return page("支付宝收银台 (沙箱)", body)

    def _pay(self, out_trade_no: str) -> Reply:
        with self._lock:
            trade = self.trades.get(out_trade_no)
            if trade is None:
                return page("交易不存在", "<p>请从商户重新发起支付。</p>", 404)
            if trade["trade_status"] not in ("WAIT_BUYER_PAY", "TRADE_SUCCESS"):
                return page("无法支付", "<p>该交易已关闭。</p>", 409)
            self.mark_paid(out_trade_no)
            checkout = self.checkouts.get(out_trade_no, {})
            notify_url, return_url = checkout.get("notify_url", ""), checkout.get("return_url", "")
        body = self.notification(out_trade_no)
        status, reply = post(
            notify_url or self.notify_url,
            body,
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        return _outcome(status == 200 and reply.strip() == "success", status, reply, return_url)


class SandboxWechat(WechatPayStub):
    """WeChat Pay v3: native ``code_url``s are scan pages; the signed APIs for the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.notify_url = ""
        self.scans: dict[str, str] = {}  # code_url token -> out_trade_no
        # out_trade_no -> notify URL and description, as the pay request said
        self.checkouts: dict[str, dict[str, str]] = {}

    def sandbox_config(self, service_url: str) -> WechatPayConfig:
        """The ``[payment.wechat]`` section aimed at this stand-in."""
        self.notify_url = f"{service_url}/api/payments/notify/wechat"
        return self.config(notify_url=self.notify_url)

    def _dispatch(self, method: str, path: str, headers: dict[str, str], body: str) -> Reply:
        parts = urllib.parse.urlsplit(path)
        if parts.path.startswith("/scan/"):
            token = parts.path.removeprefix("/scan/")
            return self._scan(token) if method == "GET" else self._pay_scanned(token)
        return super()._dispatch(method, path, headers, body)

    def _pay(self, route: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, payload = super()._pay(route, params)
        if route == "native" and status == 200:
            out_trade_no = str(params["out_trade_no"])
            token = secrets.token_urlsafe(12)
            self.scans[token] = out_trade_no
            self.checkouts[out_trade_no] = {
                "notify_url": str(params.get("notify_url") or self.notify_url),
                "description": str(params.get("description", "")),
            }
            payload = {"code_url": f"{self.base_url}/scan/{token}"}
        return status, payload

    def _scan(self, token: str) -> Reply:
        with self._lock:
            trade = self.trades.get(self.scans.get(token, ""))
            if trade is None:
                return page("二维码无效", "<p>请在商户页面重新下单。</p>", 404)
            amount = trade["amount"]["total"]
            body = (
                f"<p>商品: {html.escape(self.checkouts[trade['out_trade_no']]['description'])}</p>"
                f'<p>金额: <strong id="amount">¥{amount // 100}.{amount % 100:02d}</strong></p>'
                f"<p>订单号: {html.escape(trade['out_trade_no'])}</p>"
                + _pay_form(f"/scan/{token}", {})
            )
        return page("微信支付 (沙箱扫码)", body)

    def _pay_scanned(self, token: str) -> Reply:
        with self._lock:
            out_trade_no = self.scans.get(token, "")
            trade = self.trades.get(out_trade_no)
            if trade is None:
                return page("二维码无效", "<p>请在商户页面重新下单。</p>", 404)
            if trade["trade_state"] not in ("NOTPAY", "SUCCESS"):
                return page("无法支付", "<p>该订单已关闭。</p>", 409)
            self.mark_paid(out_trade_no)
            notify_url = self.checkouts.get(out_trade_no, {}).get("notify_url") or self.notify_url
        headers, body = self.notification(out_trade_no)
        status, reply = post(notify_url, body, {**headers, "Content-Type": "application/json"})
        return _outcome(status in (200, 204), status, reply)
