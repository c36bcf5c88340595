-- The owner console: sign-in with Discord, server-side sessions, the public gallery and billing.

-- An owner who signs in with Discord is found again by their Discord user id.
ALTER TABLE owners ADD COLUMN discord_user_id text UNIQUE CHECK (discord_user_id ~ '^[0-9]+$');

-- A sign-in under way: the OAuth2 state (hashed) and its PKCE verifier, taken once by the callback.
CREATE TABLE console_sign_ins (
    state_hash    text PRIMARY KEY,
    code_verifier text NOT NULL,
    next_path     text NOT NULL,
    expires_at    timestamptz NOT NULL
);

-- A console session: the cookie holds a random secret, only its hash is stored. The guilds are those the
-- person could manage at sign-in (the deploy picker); their Discord access token is never kept.
CREATE TABLE console_sessions (
    session_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_hash text NOT NULL UNIQUE,
    owner_id     uuid NOT NULL REFERENCES owners (owner_id) ON DELETE CASCADE,
    guilds       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(guilds) = 'array'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL CHECK (expires_at > created_at)
);
CREATE INDEX console_sessions_expiry_idx ON console_sessions (expires_at);

-- Published agents: a character card (V3) without the token, the owner or any private field. One card per
-- agent: publishing again replaces it; deleting the agent keeps the card (agent_id becomes NULL).
CREATE TABLE gallery_cards (
    gallery_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id    uuid NOT NULL REFERENCES owners (owner_id) ON DELETE CASCADE,
    agent_id     uuid UNIQUE REFERENCES agent_configurations (config_id) ON DELETE SET NULL,
    name         text NOT NULL CHECK (name <> ''),
    description  text NOT NULL,
    card         jsonb NOT NULL CHECK (jsonb_typeof(card) = 'object'),
    published_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gallery_cards_newest_idx ON gallery_cards (published_at DESC, gallery_id);

-- Billing: the Stripe product and price of each paid tier, as the Stripe API created them.
CREATE TABLE billing_prices (
    tier       text PRIMARY KEY CHECK (tier IN ('pro', 'business', 'enterprise')),
    product_id text NOT NULL,
    price_id   text NOT NULL UNIQUE
);

-- An owner's Stripe customer and subscription, as the last webhook event told.
CREATE TABLE billing_subscriptions (
    owner_id        uuid PRIMARY KEY REFERENCES owners (owner_id) ON DELETE CASCADE,
    customer_id     text UNIQUE,
    subscription_id text UNIQUE,
    status          text NOT NULL,
    tier            text NOT NULL CHECK (tier IN ('free', 'pro', 'business', 'enterprise')),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Stripe webhook events handled: a redelivered event id is acknowledged and does nothing.
CREATE TABLE stripe_events (
    event_id    text PRIMARY KEY,
    type        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
