-- Open API keys. Only HMAC-SHA256(pepper, secret) is stored; the plaintext is shown once.
CREATE TABLE api_tokens (
    id                bigserial PRIMARY KEY,
    user_id           bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              text NOT NULL DEFAULT '',
    key_hash          bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    key_hint          text NOT NULL DEFAULT '',  -- 'sk-ab12…wxyz', for display only
    status            text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
    quota_limit       bigint NOT NULL DEFAULT -1 CHECK (quota_limit >= -1),  -- nano-units, -1 = unlimited
    used_quota        bigint NOT NULL DEFAULT 0 CHECK (used_quota >= 0),
    expired_time      timestamptz,  -- NULL = never
    accessed_time     timestamptz,
    allowed_abilities text[],       -- NULL = every ability
    allowed_ips       text[],       -- NULL = any address; IPv4/IPv6 addresses or CIDRs
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, id);

-- migrate:down
DROP TABLE api_tokens;
