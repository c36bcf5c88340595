-- Erasure requests of a Discord user's data (GET/DELETE /users/{id}/data, `deep users erase`). The user id
-- is kept only while the erasure runs: a finished erasure keeps its digest (sha256 of the id), so the record
-- that proves the erasure names no one. One erasure runs per user at a time: a second request gets it.
CREATE TABLE erasures (
    erasure_id   uuid PRIMARY KEY,
    user_id      text,
    user_digest  text NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    CHECK ((finished_at IS NULL) = (user_id IS NOT NULL))
);
CREATE UNIQUE INDEX erasures_one_running_per_user ON erasures (user_id) WHERE finished_at IS NULL;
CREATE INDEX erasures_by_digest ON erasures (user_digest, requested_at DESC);

-- The steps done, each once: a rerun after a crash does the others.
CREATE TABLE erasure_steps (
    erasure_id uuid NOT NULL REFERENCES erasures (erasure_id),
    step       text NOT NULL,
    removed    integer NOT NULL CHECK (removed >= 0),
    done_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (erasure_id, step)
);

-- Who asked for, ran, exported or finished what, and when; never the user id.
CREATE TABLE erasure_audit (
    audit_id   bigserial PRIMARY KEY,
    erasure_id uuid,
    user_digest text NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erasure_audit_digest_idx ON erasure_audit (user_digest, at);
