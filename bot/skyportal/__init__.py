"""The bot's SkyPortal (Fritz) side: the REST client (client.py, over sources.py, followups.py and
endpoints.py) and its transport (transport.py); the rules are in bot.core."""
