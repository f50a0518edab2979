"""The room at `conversation_url`. For now a status page; the live room comes later."""
