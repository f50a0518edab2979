"""Webhook delivery: the outbox worker, the HTTP sender, and the target address guard."""
