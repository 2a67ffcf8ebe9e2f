"""Touchpoints: the aiohttp app that serves screens and kiosks, their WebSocket hub and proof of play."""
