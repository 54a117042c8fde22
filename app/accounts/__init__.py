"""User accounts: sign-up, log-in, tokens, profiles and their administration."""
