-- Provider names are checked by the app's provider registries (app.vod.registry,
-- app.payments.factory), not by CHECK constraints: adding a provider is one module and
-- one registry line, with no migration. Columns stay NOT NULL text.
ALTER TABLE videos DROP CONSTRAINT videos_provider_check;
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_provider_check;

-- migrate:down
ALTER TABLE videos ADD CONSTRAINT videos_provider_check
    CHECK (provider IN ('tencent', 'aliyun')) NOT VALID;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_provider_check
    CHECK (provider IN ('alipay', 'wechat')) NOT VALID;
