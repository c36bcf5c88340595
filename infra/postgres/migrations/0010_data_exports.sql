-- Access exports of a Discord user's data (POST /users/{id}/data/exports): reading every store outlasts a
-- request, so an export runs in the background and its result waits here. The result is a copy of what is
-- held about the person: it is deleted a day after it was asked for, and by the person's erasure.
CREATE TABLE data_exports (
    export_id    uuid PRIMARY KEY,
    user_id      text NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    error        text,
    data         jsonb
);
CREATE INDEX data_exports_by_user ON data_exports (user_id);
CREATE INDEX data_exports_by_age ON data_exports (requested_at);
