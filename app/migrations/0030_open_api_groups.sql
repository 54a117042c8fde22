-- Open API: user groups with a price ratio, and one group per user.
-- A user without a group_members row is in the 'default' group.
CREATE TABLE user_groups (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9_][a-z0-9_.-]{0,63}$'),
    ratio       numeric(12, 6) NOT NULL DEFAULT 1 CHECK (ratio > 0),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO user_groups (name, ratio, description)
VALUES ('default', 1, '默认分组')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE group_members (
    user_id    bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    group_name text NOT NULL REFERENCES user_groups (name) ON UPDATE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX group_members_group_idx ON group_members (group_name);

-- migrate:down
DROP TABLE group_members;
DROP TABLE user_groups;
