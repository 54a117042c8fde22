-- Business orders and their payment attempts.
--
-- An order is what the user buys (pending -> paid -> refunded, or pending ->
-- closed / expired). Each try to pay it, per channel, is a payment attempt with
-- its own channel trade number (out_trade_no): unique forever, so a number is
-- never reused after a close, an expiry or a change of channel.
CREATE TABLE orders (
    id               bigserial PRIMARY KEY,
    order_no         text NOT NULL,
    user_id          bigint NOT NULL REFERENCES users (id),
    plan_id          bigint NOT NULL REFERENCES plans (id),
    plan_name        text NOT NULL,
    plan_level       integer NOT NULL CHECK (plan_level >= 1),
    duration_days    integer NOT NULL CHECK (duration_days >= 1),
    amount_fen       bigint NOT NULL CHECK (amount_fen > 0),
    currency         text NOT NULL DEFAULT 'CNY' CHECK (currency = 'CNY'),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'paid', 'refunded', 'closed', 'expired')),
    refunded_fen     bigint NOT NULL DEFAULT 0,
    paid_attempt_id  bigint,
    expires_at       timestamptz NOT NULL,
    paid_at          timestamptz,
    closed_at        timestamptz,
    refunded_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_order_no_key UNIQUE (order_no),
    CONSTRAINT orders_refunded_fen_check CHECK (refunded_fen BETWEEN 0 AND amount_fen),
    -- paid and refunded orders carry the payment; no other status does.
    CONSTRAINT orders_paid_check CHECK (
        (status IN ('paid', 'refunded')) = (paid_at IS NOT NULL AND paid_attempt_id IS NOT NULL)
    )
);

CREATE INDEX orders_user_idx ON orders (user_id, id DESC);
CREATE INDEX orders_status_idx ON orders (status, id DESC);
CREATE INDEX orders_paid_at_idx ON orders (paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX orders_pending_expiry_idx ON orders (expires_at) WHERE status = 'pending';

CREATE TABLE payment_attempts (
    id            bigserial PRIMARY KEY,
    order_id      bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    provider      text NOT NULL CHECK (provider IN ('alipay', 'wechat')),
    method        text NOT NULL CHECK (method IN ('page', 'wap', 'native', 'jsapi')),
    out_trade_no  text NOT NULL CHECK (out_trade_no ~ '^[0-9A-Za-z_]{6,32}$'),
    amount_fen    bigint NOT NULL CHECK (amount_fen > 0),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'succeeded', 'failed', 'closed', 'refunded')),
    trade_no      text,
    launch        jsonb,
    error         text,
    -- A payment that landed on an order that could no longer take it.
    flagged       boolean NOT NULL DEFAULT false,
    flag_reason   text,
    paid_at       timestamptz,
    closed_at     timestamptz,
    checked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_attempts_out_trade_no_key UNIQUE (out_trade_no)
);

CREATE INDEX payment_attempts_order_idx ON payment_attempts (order_id, id);
CREATE INDEX payment_attempts_pending_idx ON payment_attempts (created_at) WHERE status = 'pending';
CREATE INDEX payment_attempts_flagged_idx ON payment_attempts (id) WHERE flagged;

ALTER TABLE orders ADD CONSTRAINT orders_paid_attempt_fkey
    FOREIGN KEY (paid_attempt_id) REFERENCES payment_attempts (id);

-- migrate:down
-- lint:allow-destructive
ALTER TABLE orders DROP CONSTRAINT orders_paid_attempt_fkey;
DROP TABLE payment_attempts;
DROP TABLE orders;
