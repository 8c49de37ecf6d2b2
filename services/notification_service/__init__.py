"""notification_service: each user's inbox of notifications about offers and contracts."""
