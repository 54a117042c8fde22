CREATE TABLE categories (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    sort_order  integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT categories_slug_key UNIQUE (slug)
);

CREATE TABLE videos (
    id                bigserial PRIMARY KEY,
    category_id       bigint REFERENCES categories (id) ON DELETE SET NULL,
    title             text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description       text NOT NULL DEFAULT '',
    cover_url         text NOT NULL DEFAULT '',
    duration_seconds  integer NOT NULL DEFAULT 0 CHECK (duration_seconds >= 0),
    provider          text NOT NULL CHECK (provider IN ('tencent', 'aliyun')),
    media_id          text,
    media_status      text NOT NULL DEFAULT 'none'
                      CHECK (media_status IN ('none', 'uploading', 'ready', 'failed')),
    status            text NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'processing', 'published', 'offline')),
    preview_seconds   integer NOT NULL DEFAULT 0 CHECK (preview_seconds >= 0),
    required_level    integer NOT NULL DEFAULT 0 CHECK (required_level >= 0),
    published_at      timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The public list: published, not deleted, newest first (optionally per category).
CREATE INDEX videos_public_newest_idx ON videos (published_at DESC, id DESC)
    WHERE status = 'published' AND deleted_at IS NULL;
CREATE INDEX videos_public_category_idx ON videos (category_id, published_at DESC, id DESC)
    WHERE status = 'published' AND deleted_at IS NULL;
CREATE INDEX videos_admin_idx ON videos (status, id DESC) WHERE deleted_at IS NULL;
-- Callbacks find the video by the provider's media id.
CREATE UNIQUE INDEX videos_provider_media_key ON videos (provider, media_id)
    WHERE media_id IS NOT NULL AND deleted_at IS NULL;

-- migrate:down
-- lint:allow-destructive
DROP TABLE videos;
DROP TABLE categories;
