-- Accounts of the service. Email is matched case-insensitively through a unique
-- index on lower(email) (no citext: no extension needed). Wallet balance is in
-- nano-units (1 CNY = 10^9) for the open API.
CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    email         text,
    phone         text,
    password_hash text NOT NULL,
    nickname      text,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    balance       bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_email_or_phone_check CHECK (email IS NOT NULL OR phone IS NOT NULL)
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
