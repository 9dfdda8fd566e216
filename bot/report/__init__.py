"""The night report: what the bot saw, decided and did in a night (`btsbot report`)."""
