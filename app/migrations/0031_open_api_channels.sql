-- Open API: upstream channels (one VOD provider account each) and the billable abilities.
CREATE TABLE channels (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    provider    text NOT NULL CHECK (provider IN ('tencent', 'aliyun')),
    -- provider credentials, AES-256-GCM encrypted by the app (never plaintext)
    credentials text NOT NULL DEFAULT '',
    base_url    text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
    priority    integer NOT NULL DEFAULT 0,
    weight      integer NOT NULL DEFAULT 1 CHECK (weight >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Price of one call of an ability, in nano-units (1 CNY = 10^9).
CREATE TABLE ability_prices (
    ability     text PRIMARY KEY CHECK (ability ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    price       bigint NOT NULL CHECK (price >= 0),
    description text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO ability_prices (ability, price, description) VALUES
    ('catalog.search',    1000000,  '视频目录搜索'),
    ('video.play_url',    10000000, '获取播放地址'),
    ('video.upload_auth', 20000000, '获取上传凭证'),
    ('usage.read',        0,        '查询用量')
ON CONFLICT (ability) DO NOTHING;

-- (group, ability) -> channel. NULL priority/weight fall back to the channel's.
CREATE TABLE abilities (
    id         bigserial PRIMARY KEY,
    group_name text NOT NULL REFERENCES user_groups (name) ON UPDATE CASCADE ON DELETE CASCADE,
    ability    text NOT NULL REFERENCES ability_prices (ability) ON DELETE CASCADE,
    channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    enabled    boolean NOT NULL DEFAULT true,
    priority   integer,
    weight     integer CHECK (weight >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (group_name, ability, channel_id)
);
CREATE INDEX abilities_channel_idx ON abilities (channel_id);

-- migrate:down
DROP TABLE abilities;
DROP TABLE ability_prices;
DROP TABLE channels;
