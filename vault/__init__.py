"""The token vault: keyring, encrypted store with audited access, Discord token checks, health status."""
