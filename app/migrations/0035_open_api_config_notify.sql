-- Router config change notification: any change to channels, abilities, prices,
-- groups or memberships bumps a version and NOTIFYs 'open_api_config'. Token or
-- owner changes NOTIFY 'open_api_tokens' so every node drops its cached entry.
CREATE TABLE open_api_config_version (
    id      integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version bigint NOT NULL DEFAULT 1
);
INSERT INTO open_api_config_version (id, version) VALUES (1, 1) ON CONFLICT (id) DO NOTHING;

CREATE OR REPLACE FUNCTION open_api_config_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE open_api_config_version SET version = version + 1 WHERE id = 1 RETURNING version INTO v;
    PERFORM pg_notify('open_api_config', v::text);
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['channels', 'abilities', 'ability_prices', 'user_groups', 'group_members'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_config_bump', t);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION open_api_config_bump()', t || '_config_bump', t);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION open_api_token_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        PERFORM pg_notify('open_api_tokens', 'user:' || OLD.id);
    ELSE
        PERFORM pg_notify('open_api_tokens', 'token:' || OLD.id);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS api_tokens_notify ON api_tokens;
-- used_quota and accessed_time change on every call: they never invalidate caches.
CREATE TRIGGER api_tokens_notify
    AFTER UPDATE OF status, quota_limit, expired_time, allowed_abilities, allowed_ips, user_id
        OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION open_api_token_notify();

DROP TRIGGER IF EXISTS users_open_api_notify ON users;
CREATE TRIGGER users_open_api_notify
    AFTER UPDATE OF status OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION open_api_token_notify();

-- migrate:down
DROP TRIGGER users_open_api_notify ON users;
DROP TRIGGER api_tokens_notify ON api_tokens;
DROP FUNCTION open_api_token_notify();
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['channels', 'abilities', 'ability_prices', 'user_groups', 'group_members'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_config_bump', t);
    END LOOP;
END $$;
DROP FUNCTION open_api_config_bump();
DROP TABLE open_api_config_version;
