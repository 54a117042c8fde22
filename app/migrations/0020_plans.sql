-- Subscription plans. Money is integer fen (1 CNY = 100 fen), never a float.
-- A plan that has been ordered cannot be deleted (orders keep a foreign key):
-- deactivate it instead; orders also snapshot name, level, duration and price.
CREATE TABLE plans (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    description    text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    level          integer NOT NULL CHECK (level BETWEEN 1 AND 100),
    duration_days  integer NOT NULL CHECK (duration_days BETWEEN 1 AND 3660),
    price_fen      bigint NOT NULL CHECK (price_fen BETWEEN 1 AND 1000000000000),
    active         boolean NOT NULL DEFAULT true,
    sort_order     integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX plans_public_idx ON plans (sort_order, id) WHERE active;

-- migrate:down
-- lint:allow-destructive
DROP TABLE plans;
