-- Every verified provider notification, stored raw before anything is decided,
-- under the provider's own stable id: a resend or a replay hits the unique key.
-- Reconciliation stores what a trade query taught it the same way
-- (source 'query', notification_id 'query:<out_trade_no>').
CREATE TABLE payment_events (
    id               bigserial PRIMARY KEY,
    provider         text NOT NULL,
    notification_id  text NOT NULL,
    source           text NOT NULL DEFAULT 'notify' CHECK (source IN ('notify', 'query')),
    event_type       text NOT NULL DEFAULT '',
    out_trade_no     text NOT NULL,
    attempt_id       bigint REFERENCES payment_attempts (id) ON DELETE SET NULL,
    status           text NOT NULL,
    amount_fen       bigint NOT NULL CHECK (amount_fen >= 0),
    outcome          text CHECK (
                         outcome IN ('applied', 'duplicate', 'flagged', 'ignored', 'rejected', 'error')
                     ),
    reason           text,
    raw              jsonb NOT NULL DEFAULT '{}'::jsonb,
    received_at      timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz,
    CONSTRAINT payment_events_provider_notification_key UNIQUE (provider, notification_id)
);

CREATE INDEX payment_events_attempt_idx ON payment_events (attempt_id);

-- Refunds: by an admin, or automatic for a payment that landed on a closed order.
CREATE TABLE refunds (
    id             bigserial PRIMARY KEY,
    order_id       bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    attempt_id     bigint NOT NULL REFERENCES payment_attempts (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('admin', 'late_payment')),
    out_refund_no  text NOT NULL CHECK (out_refund_no ~ '^[0-9A-Za-z_]{6,32}$'),
    amount_fen     bigint NOT NULL CHECK (amount_fen > 0),
    reason         text NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'processing', 'succeeded', 'failed')),
    refund_id      text,
    error          text,
    created_by     bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refunds_out_refund_no_key UNIQUE (out_refund_no)
);

CREATE INDEX refunds_order_idx ON refunds (order_id, id);
CREATE INDEX refunds_open_idx ON refunds (id) WHERE status IN ('pending', 'processing');
-- A late payment is refunded once, whatever retries happen.
CREATE UNIQUE INDEX refunds_late_payment_key ON refunds (attempt_id) WHERE kind = 'late_payment';

-- migrate:down
-- lint:allow-destructive
DROP TABLE refunds;
DROP TABLE payment_events;
