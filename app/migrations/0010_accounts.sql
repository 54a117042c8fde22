-- Refresh tokens: only the SHA-256 of the secret is stored. A family is one login;
-- presenting an already-used token revokes the whole family (token theft detection).
CREATE TABLE refresh_tokens (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   text NOT NULL,
    token_hash  char(64) NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_active_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- Access tokens issued before this instant are refused (set on password change).
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_changed_at timestamptz;

-- migrate:down
-- lint:allow-destructive
ALTER TABLE users DROP COLUMN IF EXISTS password_changed_at;
DROP TABLE refresh_tokens;
