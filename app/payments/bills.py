"""Daily bills (对账单): the providers' own files, parsed into provider-neutral rows.

Alipay: ``alipay.data.dataservice.bill.downloadurl.query`` (``bill_type=trade``)
gives a URL to a zip of GBK CSV files; the detail file (``..._业务明细.csv``) lists
one row per payment (``业务类型=交易``) and per refund (``退款``). WeChat Pay:
``GET /v3/bill/tradebill`` (``bill_type=ALL``) gives a URL, a gzip'd UTF-8 CSV
whose every field starts with a backtick, and the SHA1 of the unzipped file;
``GET /v3/bill/fundflowbill`` the same way for the fund-flow bill (money movements,
fees included), which is format-checked and kept for audit, not reconciled.

Parsing is all or nothing: a malformed line, an amount not written the way the
provider writes amounts (two decimals), a currency other than CNY or an unknown
row type raises ``PaymentProviderError`` (``BILL_INVALID``, with the line number)
before anything is stored.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date

from app.payments.errors import PaymentProviderError, provider_error

__all__ = [
    "Bill",
    "BillRow",
    "parse_alipay_bill",
    "parse_wechat_bill",
    "parse_wechat_fundflow",
    "unpack_wechat_bill",
]

# Both providers write yuan with exactly two decimals ("30.00", "-10.00").
_YUAN = re.compile(r"-?(0|[1-9][0-9]{0,11})\.[0-9]{2}")
_ALIPAY_DETAIL = "业务明细.csv"
_ALIPAY_COLUMNS = ("支付宝交易号", "商户订单号", "业务类型", "订单金额（元）", "商家实收（元）")
_ALIPAY_REFUND_NO = "退款批次号/请求号"
_WECHAT_COLUMNS = (
    "微信订单号",
    "商户订单号",
    "交易状态",
    "货币种类",
    "订单金额",
    "商户退款单号",
    "退款金额",
)


@dataclass(frozen=True, slots=True)
class BillRow:
    """One line of a bill: a payment (``trade``) or a refund (``refund``), amount in fen."""

    kind: str
    out_trade_no: str
    amount_fen: int
    out_refund_no: str | None = None
    trade_no: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.out_refund_no or self.out_trade_no)


@dataclass(frozen=True)
class Bill:
    """A parsed bill and the provider's file exactly as downloaded (kept for audit).

    ``bill_type`` ``trade`` carries ``rows`` to reconcile; ``fundflow`` (WeChat's
    fund-flow bill) is only format-checked: ``line_count`` entries, no rows.
    """

    provider: str
    bill_date: date
    filename: str
    raw: bytes
    rows: list[BillRow] = field(default_factory=list)
    bill_type: str = "trade"
    line_count: int | None = None

    @property
    def entries(self) -> int:
        return len(self.rows) if self.line_count is None else self.line_count


def _bad(provider: str, message: str) -> PaymentProviderError:
    return provider_error(provider, "BILL_INVALID", message)


def _fen(provider: str, text: str, line: int, *, negative: bool = False) -> int:
    value = text.strip()
    if not _YUAN.fullmatch(value) or value.startswith("-") != negative:
        raise _bad(provider, f"账单第 {line} 行金额格式错误: {value!r}")
    whole, cents = value.lstrip("-").split(".")
    fen = int(whole) * 100 + int(cents)
    if fen == 0:
        raise _bad(provider, f"账单第 {line} 行金额为 0")
    return fen


def _header_index(provider: str, header: list[str], needed: tuple[str, ...]) -> dict[str, int]:
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [name for name in needed if name not in index]
    if missing:
        raise _bad(provider, f"账单缺少列: {', '.join(missing)}")
    return index


# -- Alipay ----------------------------------------------------------------------------


def parse_alipay_bill(raw: bytes, bill_date: date) -> Bill:
    """The zip Alipay serves: find the detail CSV (GBK), parse its 交易 / 退款 rows."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = [n for n in archive.namelist() if n.endswith(_ALIPAY_DETAIL)]
            if len(names) != 1:
                raise _bad("alipay", "账单压缩包中没有唯一的业务明细文件")
            text = archive.read(names[0]).decode("gbk")
    except (zipfile.BadZipFile, UnicodeDecodeError, KeyError) as exc:
        raise _bad("alipay", "账单文件无法解压或不是 GBK 编码") from exc
    lines = text.splitlines()
    # Comment lines start with '#'; the first other line is the header.
    body = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and line[0] != "#"]
    if not body:
        raise _bad("alipay", "账单没有表头")
    header = next(csv.reader([body[0][1]]))
    index = _header_index("alipay", header, _ALIPAY_COLUMNS)
    rows: list[BillRow] = []
    for number, line in body[1:]:
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            raise _bad("alipay", f"账单第 {number} 行列数 {len(fields)} 与表头 {len(header)} 不符")
        rows.append(_alipay_row(fields, index, number))
    return Bill("alipay", bill_date, names[0], raw, rows)


def _alipay_row(fields: list[str], index: dict[str, int], line: int) -> BillRow:
    def get(name: str) -> str:
        return fields[index[name]].strip() if name in index else ""

    kind, out_trade_no = get("业务类型"), get("商户订单号")
    if not out_trade_no:
        raise _bad("alipay", f"账单第 {line} 行缺少商户订单号")
    if kind == "交易":
        amount = _fen("alipay", get("订单金额（元）"), line)
        return BillRow("trade", out_trade_no, amount, trade_no=get("支付宝交易号") or None)
    if kind == "退款":
        refund_no = get(_ALIPAY_REFUND_NO)
        if not refund_no:
            raise _bad("alipay", f"账单第 {line} 行退款缺少退款请求号")
        # A refund row carries what the merchant received as a negative amount.
        amount = _fen("alipay", get("商家实收（元）"), line, negative=True)
        return BillRow("refund", out_trade_no, amount, refund_no, get("支付宝交易号") or None)
    raise _bad("alipay", f"账单第 {line} 行业务类型未知: {kind!r}")


# -- WeChat Pay ------------------------------------------------------------------------


def unpack_wechat_bill(raw: bytes, hash_type: str, hash_value: str) -> str:
    """Gunzip the downloaded bill and check it against the hash the bill API returned."""
    try:
        plain = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise _bad("wechat", "账单文件无法解压") from exc
    if hash_type.upper() != "SHA1":
        raise _bad("wechat", f"账单摘要算法不支持: {hash_type}")
    # SHA1 is WeChat's choice: an integrity check here, not a security boundary.
    if hashlib.sha1(plain).hexdigest() != hash_value.lower():
        raise _bad("wechat", "账单文件摘要不符 (下载不完整或被篡改)")
    try:
        return plain.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad("wechat", "账单文件不是 UTF-8 编码") from exc


def parse_wechat_bill(text: str, bill_date: date, filename: str, raw: bytes) -> Bill:
    """WeChat's trade bill: header, one line per row, then a summary header and line."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise _bad("wechat", "账单没有表头")
    header = next(csv.reader([lines[0][1]]))
    index = _header_index("wechat", header, _WECHAT_COLUMNS)
    rows: list[BillRow] = []
    for number, line in lines[1:]:
        if line.startswith("总交易单数"):
            break  # the summary block closes the detail rows
        fields = [f.strip() for f in next(csv.reader([line]))]
        if len(fields) != len(header) or not all(f.startswith("`") for f in fields):
            raise _bad("wechat", f"账单第 {number} 行格式错误")
        rows.append(_wechat_row([f[1:] for f in fields], index, number))
    else:
        raise _bad("wechat", "账单缺少汇总行 (文件不完整)")
    return Bill("wechat", bill_date, filename, raw, rows)


_FUNDFLOW_COLUMNS = ("记账时间", "收支类型", "收支金额（元）", "业务凭证号")


def parse_wechat_fundflow(text: str, bill_date: date, filename: str, raw: bytes) -> Bill:
    """WeChat's fund-flow bill: checked line by line (format, 收入/支出, amounts), kept
    for audit; its entries are money movements (fees included), not reconciled rows."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise _bad("wechat", "资金账单没有表头")
    header = next(csv.reader([lines[0][1]]))
    index = _header_index("wechat", header, _FUNDFLOW_COLUMNS)
    for count, (number, line) in enumerate(lines[1:]):
        if line.startswith("资金流水总笔数"):
            return Bill("wechat", bill_date, filename, raw, [], "fundflow", count)
        fields = [f.strip() for f in next(csv.reader([line]))]
        if len(fields) != len(header) or not all(f.startswith("`") for f in fields):
            raise _bad("wechat", f"资金账单第 {number} 行格式错误")
        direction = fields[index["收支类型"]][1:]
        if direction not in ("收入", "支出"):
            raise _bad("wechat", f"资金账单第 {number} 行收支类型未知: {direction!r}")
        _fen("wechat", fields[index["收支金额（元）"]][1:], number)
    raise _bad("wechat", "资金账单缺少汇总行 (文件不完整)")


def _wechat_row(fields: list[str], index: dict[str, int], line: int) -> BillRow:
    def get(name: str) -> str:
        return fields[index[name]]

    if get("货币种类") != "CNY":
        raise _bad("wechat", f"账单第 {line} 行币种不支持: {get('货币种类')!r}")
    out_trade_no, state = get("商户订单号"), get("交易状态")
    if not out_trade_no:
        raise _bad("wechat", f"账单第 {line} 行缺少商户订单号")
    trade_no = get("微信订单号") or None
    if state == "SUCCESS":
        return BillRow("trade", out_trade_no, _fen("wechat", get("订单金额"), line), None, trade_no)
    if state == "REFUND":
        refund_no = get("商户退款单号")
        if not refund_no:
            raise _bad("wechat", f"账单第 {line} 行退款缺少商户退款单号")
        amount = _fen("wechat", get("退款金额"), line)
        return BillRow("refund", out_trade_no, amount, refund_no, trade_no)
    raise _bad("wechat", f"账单第 {line} 行交易状态未知: {state!r}")
