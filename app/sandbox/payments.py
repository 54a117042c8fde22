"""Offline stand-ins for Alipay and WeChat Pay, for tests only.

Each stub listens on 127.0.0.1 (a free port, a daemon thread), keeps a small
in-memory ledger of trades, checks the SDK's request signatures with the
merchant's public key, signs its replies with a generated "platform" key
exactly as the provider does, and builds signed notifications::

    with AlipayStub() as ali:
        provider = AlipayProvider(ali.config())
        launch = await provider.create_payment("ORD0001", "VIP", 3000, "page")
        ali.accept_pay_url(launch.pay_url)      # the buyer opened the cashier
        ali.mark_paid("ORD0001")
        body = ali.notification("ORD0001")      # what Alipay would POST
        note = await provider.verify_notification({}, body)

    with WechatPayStub() as wx:
        provider = WechatPayProvider(wx.config())
        await provider.create_payment("ORD0002", "VIP", 3000, "native")
        wx.mark_paid("ORD0002")
        headers, body = wx.notification("ORD0002")

Wire formats are the providers' own, verified against the SDKs.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import ipaddress
import json
import re
import secrets
import socketserver
import threading
import time
import urllib.parse
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from app.payments.clock import format_beijing, format_rfc3339
from app.payments.money import fen_to_yuan_str, yuan_str_to_fen
from app.settings import AlipayConfig, WechatPayConfig

__all__ = [
    "AlipayStub",
    "BillLine",
    "KeyPair",
    "WechatPayStub",
    "build_alipay_bill",
    "build_alipay_notification",
    "build_wechat_bill",
    "build_wechat_fundflow",
    "build_wechat_notification",
    "generate_keypair",
    "replace_form_fields",
]

WECHAT_SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"


# -- keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """An RSA key pair with PKCS#8 / SPKI PEM forms and SHA256withRSA helpers."""

    key: rsa.RSAPrivateKey
    private_pem: str
    public_pem: str

    def sign(self, text: str) -> str:
        """Base64 SHA256withRSA (PKCS#1 v1.5): what both providers use."""
        signature = self.key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def verify(self, text: str, signature: str) -> bool:
        try:
            self.key.public_key().verify(
                base64.b64decode(signature),
                text.encode("utf-8"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            return False
        return True


def generate_keypair(bits: int = 2048) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(key, private_pem, public_pem)


# -- the HTTP server shared by both stubs ----------------------------------------------


@dataclass(frozen=True)
class StubCall:
    """One request the stub received."""

    method: str
    path: str
    params: dict[str, Any]
    authorized: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, reply_headers, reply = self.server.stub._dispatch(
            self.command, self.path, headers, body
        )
        self.send_response(status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: _StubServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(): a slow reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])


class _StubServer:
    """A threaded HTTP server on 127.0.0.1; subclasses implement ``_dispatch``."""

    def __init__(self) -> None:
        self.calls: list[StubCall] = []
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.stub = self
            # A short poll interval makes stop() quick.
            poll = 0.05  # float-ok: seconds, not money
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(poll,), daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("stub not started: use `with` or call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError


# -- daily bills -----------------------------------------------------------------------

# (kind "trade" | "refund", out_trade_no, amount in yuan as the provider writes it,
# out_refund_no); a plain str is written as a line as it is (malformed-line tests).
BillLine = tuple[str, str, str, str | None] | str

_ALIPAY_BILL_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
    "终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
_WECHAT_BILL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)


def _digits(text: str, count: int) -> str:
    """A stable stand-in for a provider's trade number."""
    return str(int(hashlib.sha256(text.encode()).hexdigest(), 16))[:count].zfill(count)


def build_alipay_bill(seller_id: str, bill_date: str, lines: list[BillLine]) -> bytes:
    """A trade bill as Alipay serves it: a zip holding GBK CSVs (detail + summary)."""
    day = bill_date.replace("-", "")
    out = [
        "#支付宝业务明细查询",
        f"#账号：[{seller_id}0156]",
        f"#起始日期：[{bill_date} 00:00:00]   终止日期：[{bill_date} 23:59:59]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        _ALIPAY_BILL_HEADER,
    ]
    for line in lines:
        if isinstance(line, str):
            out.append(line)
            continue
        kind, out_trade_no, amount, out_refund_no = line
        refund = kind == "refund"
        fields = [""] * 25
        fields[0] = "2026" + _digits(out_trade_no, 24)
        fields[1], fields[2], fields[3] = out_trade_no, "退款" if refund else "交易", "VIP"
        fields[4] = fields[5] = f"{bill_date} 10:00:00"
        fields[11] = amount.lstrip("-") if not refund else ""
        fields[12] = amount
        fields[21] = out_refund_no or ""
        out.append(",".join(fields))
    out += [
        "#-----------------------------------------业务明细列表结束------------------------------------",
        "#交易合计：0笔，商家实收共0.00元，商家优惠共0.00元",
        f"#导出时间：[{bill_date} 09:00:00]",
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{seller_id}0156_{day}_业务明细.csv", "\r\n".join(out).encode("gbk"))
        archive.writestr(f"{seller_id}0156_{day}_业务明细(汇总).csv", "#汇总\r\n".encode("gbk"))
    return buffer.getvalue()


_WECHAT_FUNDFLOW_HEADER = (
    "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,"
    "账户结余（元）,资金变更提交申请人,备注,业务凭证号"
)


def build_wechat_fundflow(lines: list[BillLine]) -> str:
    """A fund-flow bill as WeChat Pay writes it: one entry per payment (收入) and
    refund (支出), backticked fields, then the summary header and line."""
    out = [_WECHAT_FUNDFLOW_HEADER]
    for line in lines:
        if isinstance(line, str):
            out.append(line)
            continue
        kind, out_trade_no, amount, out_refund_no = line
        refund = kind == "refund"
        fields = [
            "2026-12-03 10:00:00",
            "42000" + _digits(out_trade_no, 23),
            "1" + _digits(out_refund_no or out_trade_no, 19),
            "退款" if refund else "交易",
            "退款" if refund else "交易",
            "支出" if refund else "收入",
            amount.lstrip("-"),
            "0.00",
            "system",
            "",
            out_refund_no or out_trade_no,
        ]
        out.append(",".join("`" + f for f in fields))
    out.append("资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额")
    out.append("`0,`0,`0.00,`0,`0.00")
    return "\r\n".join(out) + "\r\n"


def build_wechat_bill(
    app_id: str, mch_id: str, lines: list[BillLine], currency: str = "CNY"
) -> str:
    """A trade bill (``bill_type=ALL``) as WeChat Pay writes it: every field behind a
    backtick, then the summary header and line."""
    out = [_WECHAT_BILL_HEADER]
    for line in lines:
        if isinstance(line, str):
            out.append(line)
            continue
        kind, out_trade_no, amount, out_refund_no = line
        refund = kind == "refund"
        fields = [""] * 27
        fields[0], fields[1], fields[2] = "2026-12-03 10:00:00", app_id, mch_id
        fields[5] = "42000" + _digits(out_trade_no, 23)
        fields[6], fields[8] = out_trade_no, "NATIVE"
        fields[9], fields[11] = "REFUND" if refund else "SUCCESS", currency
        fields[12] = fields[24] = "0.00" if refund else amount
        fields[15], fields[16] = out_refund_no or "", amount if refund else "0.00"
        fields[20], fields[22], fields[23] = "VIP", "0.00", "0.60%"
        out.append(",".join("`" + f for f in fields))
    out.append(
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    )
    out.append("`0,`0.00,`0.00,`0.00,`0.00,`0.00,`0.00")
    return "\r\n".join(out) + "\r\n"


# -- Alipay ----------------------------------------------------------------------------


def _alipay_unsigned(fields: dict[str, str], exclude: tuple[str, ...]) -> str:
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k not in exclude)


def build_alipay_notification(keys: KeyPair, fields: dict[str, str]) -> bytes:
    """Sign ``fields`` exactly as Alipay signs an async notification and form-encode them.

    The signed string drops ``sign`` and ``sign_type``, sorts by key and joins
    raw ``k=v`` pairs with ``&``.
    """
    signed = {k: v for k, v in fields.items() if k not in ("sign", "sign_type")}
    signed["sign"] = keys.sign(_alipay_unsigned(signed, ("sign", "sign_type")))
    signed["sign_type"] = "RSA2"
    return urllib.parse.urlencode(signed).encode()


def replace_form_fields(body: bytes, **changes: str | None) -> bytes:
    """Change fields of a form body *without* re-signing (for tamper tests); None deletes."""
    fields = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return urllib.parse.urlencode(fields).encode()


def _now_beijing() -> str:
    return format_beijing(datetime.now(UTC))


class AlipayStub(_StubServer):
    """Alipay's ``gateway.do`` for precreate / query / close / refund / refund query,
    the cashier's check of page, wap and app-pay requests, and notification building.

    ``overrides[method] = {...}`` makes every call of ``method`` (e.g.
    ``"alipay.trade.query"``) answer that inner object instead; ``reply_keys``
    signs replies with another key (a forged reply); ``raw_reply = (status,
    body)`` sends exactly that instead (gateway errors, garbage).
    """

    def __init__(
        self,
        app_id: str = "2021000000000000",
        seller_id: str = "2088102177000000",
        *,
        app_keys: KeyPair | None = None,
        alipay_keys: KeyPair | None = None,
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.seller_id = seller_id
        self.app_keys = app_keys or generate_keypair()
        self.alipay_keys = alipay_keys or generate_keypair()
        self.trades: dict[str, dict[str, Any]] = {}
        self.overrides: dict[str, dict[str, Any]] = {}
        self.reply_keys: KeyPair | None = None
        self.raw_reply: tuple[int, bytes] | None = None
        self.bills: dict[str, bytes] = {}

    def publish_bill(self, bill_date: str, lines: list[BillLine]) -> bytes:
        """Make the trade bill of ``bill_date`` (YYYY-MM-DD) downloadable."""
        raw = build_alipay_bill(self.seller_id, bill_date, lines)
        self.bills[bill_date] = raw
        return raw

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url}/gateway.do"

    def config(self, **overrides: Any) -> AlipayConfig:
        values: dict[str, Any] = {
            "enabled": True,
            "app_id": self.app_id,
            "seller_id": self.seller_id,
            "app_private_key": SecretStr(self.app_keys.private_pem),
            "alipay_public_key": self.alipay_keys.public_pem,
            "gateway_url": self.gateway_url,
            "notify_url": "https://shop.example.com/notify/alipay",
            "return_url": "https://shop.example.com/return/alipay",
            "timeout_seconds": 5,
        }
        values.update(overrides)
        return AlipayConfig(**values)

    # -- ledger ---------------------------------------------------------------------

    def add_trade(
        self,
        out_trade_no: str,
        amount_fen: int,
        status: str = "WAIT_BUYER_PAY",
        subject: str = "VIP",
    ) -> dict[str, Any]:
        with self._lock:
            trade = {
                "out_trade_no": out_trade_no,
                "trade_no": f"2024{secrets.randbelow(10**24):024d}",
                "total_amount": fen_to_yuan_str(amount_fen),
                "trade_status": status,
                "subject": subject,
                "refunds": {},
                "notify_ids": {},
            }
            self.trades[out_trade_no] = trade
            return trade

    def accept_pay_url(self, pay_url: str) -> dict[str, Any]:
        """Play the cashier: check a page/wap pay URL's signature and open the trade."""
        query = urllib.parse.urlsplit(pay_url).query
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        signature = params.pop("sign", "")
        if not self.app_keys.verify(_alipay_unsigned(params, ()), signature):
            raise AssertionError("pay URL signature does not verify with the app public key")
        biz = json.loads(params["biz_content"])
        existing = self.trades.get(biz["out_trade_no"])
        if existing is not None:
            return existing
        return self.add_trade(
            biz["out_trade_no"], yuan_str_to_fen(biz["total_amount"]), subject=biz["subject"]
        )

    def accept_order_string(self, order_string: str) -> dict[str, Any]:
        """Play the Alipay app: check an app-pay order string's signature and open the trade.

        The app SDK hands the string to Alipay as it is; the signature covers every
        field but ``sign``, URL-decoded, exactly like a pay URL's.
        """
        params = dict(urllib.parse.parse_qsl(order_string, keep_blank_values=True))
        if params.get("method") != "alipay.trade.app.pay":
            raise AssertionError("not an app-pay order string")
        return self.accept_pay_url("?" + order_string)

    def mark_paid(self, out_trade_no: str, status: str = "TRADE_SUCCESS") -> dict[str, Any]:
        with self._lock:
            trade = self.trades[out_trade_no]
            trade["trade_status"] = status
            trade.setdefault("send_pay_date", _now_beijing())
            return trade

    def notification(
        self, out_trade_no: str, /, *, keys: KeyPair | None = None, **overrides: str | None
    ) -> bytes:
        """A signed notification for a trade in its current state.

        ``notify_id`` is the same for every call with the same trade status,
        like Alipay's resends. ``overrides`` change fields before signing
        (None deletes one); ``keys`` signs with another key (a forgery).
        """
        with self._lock:
            trade = self.trades[out_trade_no]
            status = trade["trade_status"]
            notify_id = trade["notify_ids"].setdefault(status, secrets.token_hex(16))
            paid_at = trade.get("send_pay_date") or _now_beijing()
            amount = trade["total_amount"]
            fields: dict[str, str] = {
                "gmt_create": paid_at,
                "charset": "utf-8",
                "gmt_payment": paid_at,
                "notify_time": _now_beijing(),
                "subject": trade["subject"],
                "buyer_id": "2088102177846880",
                "invoice_amount": amount,
                "version": "1.0",
                "notify_id": notify_id,
                "notify_type": "trade_status_sync",
                "fund_bill_list": json.dumps([{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}]),
                "out_trade_no": out_trade_no,
                "total_amount": amount,
                "trade_status": status,
                "trade_no": trade["trade_no"],
                "auth_app_id": self.app_id,
                "receipt_amount": amount,
                "point_amount": "0.00",
                "app_id": self.app_id,
                "buyer_pay_amount": amount,
                "seller_id": self.seller_id,
            }
        for key, value in overrides.items():
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value
        return build_alipay_notification(keys or self.alipay_keys, fields)

    # -- gateway --------------------------------------------------------------------

    def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, str], bytes]:
        if urllib.parse.urlsplit(path).path == "/bill/download":
            return self._bill_file(path)
        query = urllib.parse.urlsplit(path).query or body
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        signature = params.pop("sign", "")
        # Requests are signed over every field except sign (sign_type included).
        authorized = self.app_keys.verify(_alipay_unsigned(params, ()), signature)
        api = params.get("method", "")
        biz = json.loads(params.get("biz_content") or "{}")
        self.calls.append(StubCall(method, api, {**params, "biz_content": biz}, authorized))
        if self.raw_reply is not None:
            return self.raw_reply[0], {"Content-Type": "text/html;charset=utf-8"}, self.raw_reply[1]
        if not authorized:
            inner = _alipay_fail("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错")
        elif params.get("app_id") != self.app_id:
            inner = _alipay_fail("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID")
        elif api in self.overrides:
            inner = dict(self.overrides[api])
        else:
            inner = self._handle(api, biz)
        return 200, {"Content-Type": "text/html;charset=utf-8"}, self._signed_reply(api, inner)

    def _signed_reply(self, api: str, inner: dict[str, Any]) -> bytes:
        text = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
        keys = self.reply_keys or self.alipay_keys
        name = api.replace(".", "_") + "_response"
        return ('{"' + name + '":' + text + ',"sign":"' + keys.sign(text) + '"}').encode()

    def _handle(self, api: str, biz: dict[str, Any]) -> dict[str, Any]:
        handlers = {
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
        }
        handler = handlers.get(api)
        if api == "alipay.trade.precreate":
            return self._precreate(biz)
        if api == "alipay.data.dataservice.bill.downloadurl.query":
            return self._bill_url(biz)
        if handler is None:
            return _alipay_fail("40004", "Business Failed", "isv.invalid-method", "不支持的接口")
        with self._lock:
            trade = self.trades.get(str(biz.get("out_trade_no")))
            if trade is None:
                return _alipay_fail("40004", "Business Failed", "ACQ.TRADE_NOT_EXIST", "交易不存在")
            return handler(trade, biz)

    def _precreate(self, biz: dict[str, Any]) -> dict[str, Any]:
        """A QR trade: Alipay creates it now, the buyer scans ``qr_code`` later."""
        out_trade_no = str(biz.get("out_trade_no") or "")
        try:
            amount = yuan_str_to_fen(str(biz.get("total_amount")))
        except ValueError:
            return _alipay_fail("40002", "Invalid Arguments", "isv.invalid-parameter", "金额错误")
        if not out_trade_no or not biz.get("subject") or amount <= 0:
            return _alipay_fail("40002", "Invalid Arguments", "isv.missing-parameter", "缺少参数")
        with self._lock:
            existing = self.trades.get(out_trade_no)
            if existing is not None and existing["total_amount"] != fen_to_yuan_str(amount):
                return _alipay_fail(
                    "40004", "Business Failed", "ACQ.DUP_OUT_ORDER", "交易号重复且参数不一致"
                )
            if existing is None:
                self.add_trade(out_trade_no, amount, subject=str(biz["subject"]))
        return {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": out_trade_no,
            "qr_code": f"https://qr.alipay.com/bax{secrets.token_hex(10)}",
        }

    def _bill_url(self, biz: dict[str, Any]) -> dict[str, Any]:
        day = str(biz.get("bill_date") or "")
        if biz.get("bill_type") not in ("trade", "signcustomer"):
            return _alipay_fail(
                "40002", "Invalid Arguments", "isv.invalid-parameter", "账单类型错误"
            )
        if day not in self.bills:
            return _alipay_fail("40004", "Business Failed", "isp.bill_not_exist", "账单不存在")
        token = secrets.token_hex(8)
        url = f"{self.base_url}/bill/download?bill_date={day}&token={token}"
        return {"code": "10000", "msg": "Success", "bill_download_url": url}

    def _bill_file(self, path: str) -> tuple[int, dict[str, str], bytes]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        raw = self.bills.get(query.get("bill_date", ""))
        if raw is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        return 200, {"Content-Type": "application/oct-stream"}, raw

    def _refund_query(self, trade: dict[str, Any], biz: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
        }
        request_no = str(biz.get("out_request_no") or "")
        refunds: dict[str, int] = trade["refunds"]
        # Alipay answers an unknown request number with success and no refund fields.
        if request_no in refunds:
            reply.update(
                {
                    "out_request_no": request_no,
                    "total_amount": trade["total_amount"],
                    "refund_amount": fen_to_yuan_str(refunds[request_no]),
                    "refund_status": "REFUND_SUCCESS",
                }
            )
        return reply

    def _query(self, trade: dict[str, Any], biz: dict[str, Any]) -> dict[str, Any]:
        reply = {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "buyer_logon_id": "abc***@example.com",
            "trade_status": trade["trade_status"],
            "total_amount": trade["total_amount"],
        }
        if "send_pay_date" in trade:
            reply["send_pay_date"] = trade["send_pay_date"]
        return reply

    def _close(self, trade: dict[str, Any], biz: dict[str, Any]) -> dict[str, Any]:
        if trade["trade_status"] != "WAIT_BUYER_PAY":
            return _alipay_fail(
                "40004", "Business Failed", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法"
            )
        trade["trade_status"] = "TRADE_CLOSED"
        return {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
        }

    def _refund(self, trade: dict[str, Any], biz: dict[str, Any]) -> dict[str, Any]:
        refunds: dict[str, int] = trade["refunds"]
        request_no = str(biz.get("out_request_no") or trade["out_trade_no"])
        amount = yuan_str_to_fen(str(biz["refund_amount"]))
        total = yuan_str_to_fen(trade["total_amount"])
        fund_change = "N"
        if request_no not in refunds:
            if trade["trade_status"] not in ("TRADE_SUCCESS", "TRADE_FINISHED"):
                return _alipay_fail(
                    "40004", "Business Failed", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法"
                )
            if amount + sum(refunds.values()) > total:
                return _alipay_fail(
                    "40004", "Business Failed", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限"
                )
            refunds[request_no] = amount
            fund_change = "Y"
            if sum(refunds.values()) == total:
                trade["trade_status"] = "TRADE_CLOSED"
        return {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "buyer_logon_id": "abc***@example.com",
            "fund_change": fund_change,
            "refund_fee": fen_to_yuan_str(sum(refunds.values())),
            "gmt_refund_pay": _now_beijing(),
        }


def _alipay_fail(code: str, msg: str, sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


# -- WeChat Pay v3 ---------------------------------------------------------------------


def _wechat_headers(
    keys: KeyPair, serial: str, body: str, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = uuid.uuid4().hex
    return {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": keys.sign(f"{ts}\n{nonce}\n{body}\n"),
        "Wechatpay-Signature-Type": WECHAT_SIGNATURE_TYPE,
    }


def build_wechat_notification(
    keys: KeyPair,
    apiv3_key: str,
    serial: str,
    resource: dict[str, Any],
    *,
    event_type: str = "TRANSACTION.SUCCESS",
    event_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    """Encrypt ``resource`` (AES-256-GCM with the APIv3 key) into a v3 event and sign it.

    Returns the ``Wechatpay-*`` headers and the raw JSON body, as WeChat Pay POSTs them.
    """
    nonce = secrets.token_hex(6)  # 12 chars: the SDK uses nonce.encode() as the GCM nonce
    original = "refund" if event_type.startswith("REFUND.") else "transaction"
    plaintext = json.dumps(resource, ensure_ascii=False).encode()
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext, original.encode())
    event = {
        "id": event_id or str(uuid.uuid4()),
        "create_time": format_rfc3339(datetime.now(UTC)),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功" if event_type == "TRANSACTION.SUCCESS" else event_type,
        "resource": {
            "original_type": original,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": original,
            "nonce": nonce,
        },
    }
    body = json.dumps(event, ensure_ascii=False)
    return _wechat_headers(keys, serial, body, timestamp), body.encode()


_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')
_TRADE_PATH = re.compile(r"/v3/pay/transactions/out-trade-no/([^/?]+)(/close)?")
_REFUND_PATH = re.compile(r"/v3/refund/domestic/refunds/([^/?]+)")
# Which appids each pay endpoint accepts: the mini program pays through the JSAPI
# endpoint under its own appid, the mobile app through /app under the open-platform one.
_APPIDS_FOR = {
    "native": ("app_id",),
    "h5": ("app_id",),
    "jsapi": ("app_id", "miniprogram_app_id"),
    "app": ("mobile_app_id",),
}


class WechatPayStub(_StubServer):
    """WeChat Pay v3 for native / jsapi (also the mini program's) / h5 / app pay, query,
    close, refund and refund query, plus notifications.

    ``overrides[(method, route)] = (status, body)`` forces a reply, where route
    is ``"native"``, ``"jsapi"``, ``"h5"``, ``"app"``, ``"query"``, ``"close"``,
    ``"refund"`` or ``"refund_query"``;
    ``reply_keys`` signs replies with another key; ``refund_status`` sets what
    new refunds report (``SUCCESS`` or ``PROCESSING``).
    """

    def __init__(
        self,
        mch_id: str = "1900000109",
        app_id: str = "wx8888888888888888",
        apiv3_key: str = "0123456789abcdef0123456789abcdef",
        *,
        miniprogram_app_id: str = "wx7777777777777777",
        mobile_app_id: str = "wx6666666666666666",
        public_key_id: str = "PUB_KEY_ID_0114232134912410000000000000",
        mch_cert_serial_no: str = "444F4864EA9B34415FAKE00000000000000000000",
        merchant_keys: KeyPair | None = None,
        platform_keys: KeyPair | None = None,
    ) -> None:
        super().__init__()
        self.mch_id = mch_id
        self.app_id = app_id
        self.miniprogram_app_id = miniprogram_app_id
        self.mobile_app_id = mobile_app_id
        self.apiv3_key = apiv3_key
        self.public_key_id = public_key_id
        self.mch_cert_serial_no = mch_cert_serial_no
        self.merchant_keys = merchant_keys or generate_keypair()
        self.platform_keys = platform_keys or generate_keypair()
        self.trades: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.overrides: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.reply_keys: KeyPair | None = None
        self.refund_status = "SUCCESS"
        self.bills: dict[str, str] = {}
        self.fundflow_bills: dict[str, str] = {}
        # Serve a bill file that does not match the hash the bill API announced.
        self.corrupt_bill_download = False

    def publish_bill(self, bill_date: str, lines: list[BillLine], currency: str = "CNY") -> str:
        """Make the trade bill of ``bill_date`` (YYYY-MM-DD) downloadable."""
        text = build_wechat_bill(self.app_id, self.mch_id, lines, currency)
        self.bills[bill_date] = text
        self.fundflow_bills[bill_date] = build_wechat_fundflow(
            [line for line in lines if not isinstance(line, str)]
        )
        return text

    def publish_fundflow_bill(self, bill_date: str, lines: list[BillLine]) -> str:
        """Replace the fund-flow bill of ``bill_date`` (publish_bill makes a matching one)."""
        text = build_wechat_fundflow(lines)
        self.fundflow_bills[bill_date] = text
        return text

    def config(self, **overrides: Any) -> WechatPayConfig:
        values: dict[str, Any] = {
            "enabled": True,
            "mch_id": self.mch_id,
            "app_id": self.app_id,
            "miniprogram_app_id": self.miniprogram_app_id,
            "mobile_app_id": self.mobile_app_id,
            "mch_private_key": SecretStr(self.merchant_keys.private_pem),
            "mch_cert_serial_no": self.mch_cert_serial_no,
            "apiv3_key": SecretStr(self.apiv3_key),
            "platform_public_key": self.platform_keys.public_pem,
            "platform_public_key_id": self.public_key_id,
            "base_url": self.base_url,
            "notify_url": "https://shop.example.com/notify/wechat",
            "timeout_seconds": 5,
        }
        values.update(overrides)
        return WechatPayConfig(**values)

    # -- ledger ---------------------------------------------------------------------

    def add_trade(
        self,
        out_trade_no: str,
        amount_fen: int,
        trade_type: str = "NATIVE",
        app_id: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            trade: dict[str, Any] = {
                "appid": app_id or self.app_id,
                "mchid": self.mch_id,
                "out_trade_no": out_trade_no,
                "trade_type": trade_type,
                "trade_state": "NOTPAY",
                "trade_state_desc": "订单未支付",
                "amount": {"total": amount_fen, "currency": "CNY"},
            }
            self.trades[out_trade_no] = trade
            return trade

    def mark_paid(
        self, out_trade_no: str, payer_openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    ) -> dict[str, Any]:
        with self._lock:
            trade = self.trades[out_trade_no]
            total = trade["amount"]["total"]
            trade.update(
                {
                    "trade_state": "SUCCESS",
                    "trade_state_desc": "支付成功",
                    "transaction_id": trade.get("transaction_id")
                    or f"42000{secrets.randbelow(10**23):023d}",
                    "success_time": format_rfc3339(datetime.now(UTC)),
                    "bank_type": "OTHERS",
                    "payer": {"openid": payer_openid},
                    "amount": {
                        "total": total,
                        "payer_total": total,
                        "currency": "CNY",
                        "payer_currency": "CNY",
                    },
                }
            )
            return trade

    def notification(
        self,
        out_trade_no: str,
        *,
        resource: dict[str, Any] | None = None,
        event_type: str = "TRANSACTION.SUCCESS",
        event_id: str | None = None,
        apiv3_key: str | None = None,
        keys: KeyPair | None = None,
        serial: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """A signed, encrypted notification for the trade's current state.

        ``resource`` replaces the trade view; ``apiv3_key``, ``keys``, ``serial``
        and ``timestamp`` let tests build the bad variants.
        """
        with self._lock:
            payload = resource if resource is not None else _trade_view(self.trades[out_trade_no])
        return build_wechat_notification(
            keys or self.platform_keys,
            apiv3_key or self.apiv3_key,
            serial or self.public_key_id,
            payload,
            event_type=event_type,
            event_id=event_id,
            timestamp=timestamp,
        )

    # -- API ------------------------------------------------------------------------

    def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, str], bytes]:
        authorized = self._authorized(method, path, headers.get("authorization", ""), body)
        params = json.loads(body) if body else {}
        route = self._route(method, path)
        self.calls.append(StubCall(method, path, params, authorized))
        if not authorized:
            return self._reply(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        if (method, route) in self.overrides:
            return self._reply(*self.overrides[(method, route)])
        if route == "bill_file":
            return self._bill_file(path)
        with self._lock:
            return self._reply(*self._handle(method, route, path, params))

    def _bill_file(self, path: str) -> tuple[int, dict[str, str], bytes]:
        # The file download is signed by the merchant like any call, but its reply is
        # not signed (the SDK skips verification; the hash covers the file instead).
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        token = query.get("token", "")
        files = self.fundflow_bills if token.startswith("fundflow-") else self.bills
        text = files.get(token.removeprefix("fundflow-"))
        if text is None:
            return 404, {"Content-Type": "application/json"}, b'{"code":"NOT_FOUND"}'
        if self.corrupt_bill_download:
            text = text.replace("`0.00", "`9.99", 1)
        return 200, {"Content-Type": "application/octet-stream"}, gzip.compress(text.encode())

    def _bill(self, path: str, fundflow: bool = False) -> tuple[int, dict[str, Any]]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        day = query.get("bill_date", "")
        files, prefix = (self.fundflow_bills, "fundflow-") if fundflow else (self.bills, "")
        if query.get("bill_type", "ALL") not in ("ALL", "SUCCESS", "REFUND"):
            return 400, {"code": "PARAM_ERROR", "message": "bill_type 不合法"}
        if fundflow and query.get("account_type") not in ("BASIC", "OPERATION", "FEES"):
            return 400, {"code": "PARAM_ERROR", "message": "account_type 不合法"}
        if query.get("tar_type") not in (None, "GZIP") or day not in files:
            return 400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}
        return 200, {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(files[day].encode()).hexdigest(),
            "download_url": f"{self.base_url}/v3/billdownload/file?token={prefix}{day}",
        }

    def _authorized(self, method: str, path: str, authorization: str, body: str) -> bool:
        scheme, _, rest = authorization.partition(" ")
        fields = dict(_AUTH_FIELD.findall(rest))
        if scheme != WECHAT_SIGNATURE_TYPE or fields.get("mchid") != self.mch_id:
            return False
        if fields.get("serial_no") != self.mch_cert_serial_no:
            return False
        ts, nonce = fields.get("timestamp"), fields.get("nonce_str")
        message = f"{method}\n{path}\n{ts}\n{nonce}\n{body}\n"
        return self.merchant_keys.verify(message, fields.get("signature", ""))

    @staticmethod
    def _route(method: str, path: str) -> str:
        plain = path.split("?", 1)[0]
        if plain.rsplit("/", 1)[0] == "/v3/pay/transactions" and plain.rsplit("/", 1)[1] in (
            "native",
            "jsapi",
            "h5",
            "app",
        ):
            return plain.rsplit("/", 1)[1]
        if plain == "/v3/refund/domestic/refunds":
            return "refund"
        if _REFUND_PATH.fullmatch(plain):
            return "refund_query"
        if plain == "/v3/bill/tradebill":
            return "bill"
        if plain == "/v3/bill/fundflowbill":
            return "fundflow_bill"
        if plain == "/v3/billdownload/file":
            return "bill_file"
        match = _TRADE_PATH.fullmatch(plain)
        if match:
            return "close" if match.group(2) else "query"
        return "unknown"

    def _reply(
        self, status: int, payload: dict[str, Any] | None
    ) -> tuple[int, dict[str, str], bytes]:
        body = "" if payload is None else json.dumps(payload, ensure_ascii=False)
        headers = _wechat_headers(self.reply_keys or self.platform_keys, self.public_key_id, body)
        headers["Content-Type"] = "application/json"
        return status, headers, body.encode()

    def _handle(
        self, method: str, route: str, path: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        if route in _APPIDS_FOR:
            return self._pay(route, params)
        if route == "refund":
            return self._refund(params)
        if route in ("bill", "fundflow_bill"):
            return self._bill(path, fundflow=route == "fundflow_bill")
        if route == "refund_query":
            found = _REFUND_PATH.fullmatch(path.split("?", 1)[0])
            refund = self.refunds.get(urllib.parse.unquote(found.group(1))) if found else None
            if refund is None:
                return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}
            return 200, _trade_view(refund)
        match = _TRADE_PATH.fullmatch(path.split("?", 1)[0])
        trade = self.trades.get(urllib.parse.unquote(match.group(1))) if match else None
        if trade is None:
            return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
        if route == "query":
            return 200, _trade_view(trade)
        if trade["trade_state"] == "SUCCESS":
            return 400, {"code": "ORDER_PAID", "message": "订单已支付"}
        trade["trade_state"], trade["trade_state_desc"] = "CLOSED", "已关闭"
        return 204, None

    def _pay(self, route: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        app_ids = {getattr(self, name) for name in _APPIDS_FOR[route]}
        if params.get("mchid") != self.mch_id or params.get("appid") not in app_ids:
            return 400, {"code": "PARAM_ERROR", "message": "appid 和 mch_id 不匹配"}
        if route == "jsapi" and not params.get("payer", {}).get("openid"):
            return 400, {"code": "PARAM_ERROR", "message": "缺少参数 payer.openid"}
        if route == "h5" and not _valid_h5_scene(params.get("scene_info")):
            return 400, {"code": "PARAM_ERROR", "message": "scene_info 不合法"}
        total = params.get("amount", {}).get("total")
        if isinstance(total, bool) or not isinstance(total, int) or total <= 0:
            return 400, {"code": "PARAM_ERROR", "message": "amount.total 不合法"}
        out_trade_no = str(params.get("out_trade_no"))
        existing = self.trades.get(out_trade_no)
        if existing is not None and (
            existing["amount"]["total"] != total or existing["trade_state"] != "NOTPAY"
        ):
            return 400, {"code": "OUT_TRADE_NO_USED", "message": "商户订单号重复"}
        if existing is None:
            trade_type = "MWEB" if route == "h5" else route.upper()
            self.add_trade(out_trade_no, total, trade_type, str(params["appid"]))
        if route == "native":
            return 200, {"code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(8)}"}
        prepay_id = f"wx{secrets.token_hex(16)}"
        self.trades[out_trade_no]["prepay_id"] = prepay_id  # stub bookkeeping only
        if route == "h5":
            checkmweb = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb"
            return 200, {"h5_url": f"{checkmweb}?prepay_id={prepay_id}&package={total}"}
        return 200, {"prepay_id": prepay_id}

    def check_client_params(self, params: dict[str, str]) -> str:
        """Play the WeChat client: verify JSAPI / mini program (``paySign``) or APP
        (``sign``) parameters with the merchant's public key; return the prepay id."""
        if "paySign" in params:
            package = params["package"]
            fields = [params["appId"], params["timeStamp"], params["nonceStr"], package]
            signature, prepay_id = params["paySign"], package.removeprefix("prepay_id=")
        else:
            prepay_id = params["prepayid"]
            fields = [params["appid"], params["timestamp"], params["noncestr"], prepay_id]
            signature = params["sign"]
        if not self.merchant_keys.verify("\n".join(fields) + "\n", signature):
            raise AssertionError("client pay parameters do not verify with the merchant key")
        return prepay_id

    def finish_refund(self, out_refund_no: str, status: str = "SUCCESS") -> dict[str, Any]:
        """WeChat finishes a PROCESSING refund (``SUCCESS``, ``ABNORMAL`` or ``CLOSED``)."""
        with self._lock:
            refund = self.refunds[out_refund_no]
            refund["status"] = status
            if status == "SUCCESS":
                refund["success_time"] = format_rfc3339(datetime.now(UTC))
            return refund

    def _refund(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        out_refund_no = str(params.get("out_refund_no"))
        if out_refund_no in self.refunds:
            return 200, self.refunds[out_refund_no]
        trade = self.trades.get(str(params.get("out_trade_no")))
        if trade is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}
        if trade["trade_state"] not in ("SUCCESS", "REFUND"):
            return 400, {"code": "INVALID_REQUEST", "message": "订单未支付"}
        amount = params.get("amount", {})
        total = trade["amount"]["total"]
        done = sum(
            r["amount"]["refund"]
            for r in self.refunds.values()
            if r["out_trade_no"] == trade["out_trade_no"]
        )
        if amount.get("total") != total or done + int(amount.get("refund", 0)) > total:
            return 400, {"code": "INVALID_REQUEST", "message": "退款金额不合法"}
        refund = {
            "refund_id": f"50000{secrets.randbelow(10**23):023d}",
            "out_refund_no": out_refund_no,
            "transaction_id": trade.get("transaction_id"),
            "out_trade_no": trade["out_trade_no"],
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": format_rfc3339(datetime.now(UTC)),
            "status": self.refund_status,
            "amount": {
                "total": total,
                "refund": amount["refund"],
                "payer_total": total,
                "payer_refund": amount["refund"],
                "currency": "CNY",
            },
        }
        self.refunds[out_refund_no] = refund
        trade["trade_state"] = "REFUND"
        return 200, refund


def _valid_h5_scene(scene: Any) -> bool:
    """H5 needs the payer's IP and ``h5_info.type`` (WeChat checks the IP at the cashier)."""
    if not isinstance(scene, dict) or not isinstance(scene.get("h5_info"), dict):
        return False
    try:
        ipaddress.ip_address(str(scene.get("payer_client_ip")))
    except ValueError:
        return False
    return scene["h5_info"].get("type") in ("iOS", "Android", "Wap")


def _trade_view(trade: dict[str, Any]) -> dict[str, Any]:
    # A deep copy, detached from the ledger, without the stub's own bookkeeping.
    view: dict[str, Any] = json.loads(json.dumps(trade))
    view.pop("prepay_id", None)
    return view
