-- One data key per Discord user: it seals the user's personal fields in events (streams/sealing.py).
-- The key is stored wrapped by the vault's key ring (wrap_key_id names the ring's key, the data key id is the
-- associated data). The data key id is random, so a ciphertext's key id names no one; deleting the row is
-- the user's erasure from every event copy sealed under it.
CREATE TABLE user_data_keys (
    key_id      text PRIMARY KEY,
    user_id     text NOT NULL UNIQUE,
    wrap_key_id text NOT NULL,
    nonce       bytea NOT NULL,
    wrapped_key bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
