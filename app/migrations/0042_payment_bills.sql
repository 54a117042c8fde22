-- Daily bills (对账单) downloaded from Alipay / WeChat Pay and reconciled against
-- local payments and refunds (docs/payments.md). One row per reconciliation run:
-- the provider's file exactly as downloaded (kept for audit), its SHA-256, and the
-- findings (missing, extra and amount-mismatched rows). Written in one transaction
-- after every file of the run parsed: a bad file leaves no row.
CREATE TABLE payment_bills (
    id          bigserial PRIMARY KEY,
    provider    text NOT NULL CHECK (provider IN ('alipay', 'wechat')),
    -- trade: payments and refunds, reconciled; fundflow: WeChat's fund-flow bill,
    -- format-checked and kept for audit (no findings of its own).
    bill_type   text NOT NULL CHECK (bill_type IN ('trade', 'fundflow')),
    bill_date   date NOT NULL,
    filename    text NOT NULL,
    raw         bytea NOT NULL,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    row_count   integer NOT NULL CHECK (row_count >= 0),
    missing     integer NOT NULL CHECK (missing >= 0),
    extra       integer NOT NULL CHECK (extra >= 0),
    mismatched  integer NOT NULL CHECK (mismatched >= 0),
    findings    jsonb NOT NULL,
    created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payment_bills_day_idx ON payment_bills (provider, bill_date, id);

-- migrate:down
-- lint:allow-destructive
DROP TABLE payment_bills;
