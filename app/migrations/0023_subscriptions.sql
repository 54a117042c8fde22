-- Subscriptions: one grant per paid order (UNIQUE order_id: a second grant for
-- the same order is impossible even if the code above it were wrong), and the
-- user's schedule of access periods computed from the grants (docs/payments.md:
-- a higher level runs first, equal levels queue, lower levels wait).
CREATE TABLE subscriptions (
    id                 bigserial PRIMARY KEY,
    user_id            bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    order_id           bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    plan_id            bigint NOT NULL REFERENCES plans (id),
    level              integer NOT NULL CHECK (level >= 1),
    granted_at         timestamptz NOT NULL,
    purchased_seconds  bigint NOT NULL CHECK (purchased_seconds > 0),
    duration_seconds   bigint NOT NULL,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    starts_at          timestamptz,
    ends_at            timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_order_id_key UNIQUE (order_id),
    CONSTRAINT subscriptions_duration_check
        CHECK (duration_seconds BETWEEN 0 AND purchased_seconds)
);

CREATE INDEX subscriptions_user_idx ON subscriptions (user_id, id);

CREATE TABLE subscription_periods (
    id               bigserial PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subscription_id  bigint NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    level            integer NOT NULL CHECK (level >= 1),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    CONSTRAINT subscription_periods_range_check CHECK (ends_at > starts_at)
);

CREATE INDEX subscription_periods_user_idx ON subscription_periods (user_id, ends_at);
CREATE INDEX subscription_periods_now_idx ON subscription_periods (ends_at, starts_at);

-- migrate:down
-- lint:allow-destructive
DROP TABLE subscription_periods;
DROP TABLE subscriptions;
