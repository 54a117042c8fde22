-- Wallet top-ups and adjustments (ledgered), and the per-request deduction record
-- that makes deduct_quota idempotent.
CREATE TABLE wallet_ledger (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount        bigint NOT NULL CHECK (amount <> 0),  -- nano-units; > 0 credit, < 0 debit
    balance_after bigint NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('topup', 'adjust', 'refund')),
    reference     text UNIQUE,  -- idempotency key of the top-up (e.g. a payment order number)
    operator_id   bigint,
    note          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX wallet_ledger_user_idx ON wallet_ledger (user_id, created_at DESC);

CREATE TABLE quota_deductions (
    request_id  text PRIMARY KEY,
    user_id     bigint NOT NULL,
    token_id    bigint NOT NULL,
    amount      bigint NOT NULL CHECK (amount >= 0),
    refunded_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quota_deductions_created_idx ON quota_deductions (created_at);

-- migrate:down
DROP TABLE quota_deductions;
DROP TABLE wallet_ledger;
