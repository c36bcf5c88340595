-- What owners were told on owner.notifications (a dead token, a spent AI quota, a reported message): the
-- API and the playground show an owner theirs, operators review all of them. The notification id makes
-- storing a redelivered record a no-op.
CREATE TABLE owner_notifications (
    notification_id text PRIMARY KEY,
    owner_id        uuid NOT NULL REFERENCES owners (owner_id) ON DELETE CASCADE,
    kind            text NOT NULL,
    message         text NOT NULL,
    deployment_id   uuid,
    token_id        uuid,
    at              timestamptz NOT NULL
);
CREATE INDEX owner_notifications_newest ON owner_notifications (owner_id, at DESC);
