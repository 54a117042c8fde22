-- What subscribers are told (app.notify): an outbox written in the same transaction as the
-- event it reports (payment success, refund, subscription expiry), drained by a job.
--   dedupe_key  one message per event ('payment_succeeded:<order id>', ...): a replayed
--               event, or two processes noticing one expiry, write it once;
--   status      pending -> sent, or failed after notifications.max_attempts attempts.
-- notification_attempts books every delivery attempt exactly once: its row is inserted in
-- the transaction that claims the message (attempt_no = the message's new attempt count,
-- unique), and finished with its outcome in the transaction that settles the message.
CREATE TABLE notification_outbox (
    id               bigserial PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind             text NOT NULL
                     CHECK (kind IN ('payment_succeeded', 'refund_succeeded', 'subscription_expired')),
    dedupe_key       text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    CONSTRAINT notification_outbox_dedupe_key UNIQUE (dedupe_key)
);
CREATE INDEX notification_outbox_due_idx ON notification_outbox (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notification_outbox_user_idx ON notification_outbox (user_id, id DESC);

CREATE TABLE notification_attempts (
    id           bigserial PRIMARY KEY,
    outbox_id    bigint NOT NULL REFERENCES notification_outbox (id) ON DELETE CASCADE,
    attempt_no   integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text CHECK (outcome IN ('sent', 'error')),
    error        text,
    CONSTRAINT notification_attempts_no_key UNIQUE (outbox_id, attempt_no)
);

-- migrate:down
-- lint:allow-destructive
DROP TABLE notification_attempts;
DROP TABLE notification_outbox;
