-- Wallet top-ups are orders too (docs/payments.md): kind 'topup' buys open API wallet
-- credit instead of a plan, so it has no plan, level or duration (0). The credit is
-- written in the transaction that marks the order paid (app.commerce.topups).
ALTER TABLE orders ADD COLUMN kind text NOT NULL DEFAULT 'plan'
    CONSTRAINT orders_kind_check CHECK (kind IN ('plan', 'topup'));
ALTER TABLE orders ALTER COLUMN plan_id DROP NOT NULL;
ALTER TABLE orders DROP CONSTRAINT orders_plan_level_check;
ALTER TABLE orders DROP CONSTRAINT orders_duration_days_check;
ALTER TABLE orders ADD CONSTRAINT orders_kind_plan_check CHECK (
    CASE kind
        WHEN 'plan' THEN plan_id IS NOT NULL AND plan_level >= 1 AND duration_days >= 1
        ELSE plan_id IS NULL AND plan_level = 0 AND duration_days = 0
    END
);

-- migrate:down
-- Fails while top-up orders exist: those are real payments, not dropped here.
ALTER TABLE orders DROP CONSTRAINT orders_kind_plan_check;
ALTER TABLE orders ADD CONSTRAINT orders_plan_level_check CHECK (plan_level >= 1);
ALTER TABLE orders ADD CONSTRAINT orders_duration_days_check CHECK (duration_days >= 1);
ALTER TABLE orders ALTER COLUMN plan_id SET NOT NULL;
-- lint:allow-destructive
ALTER TABLE orders DROP COLUMN kind;
