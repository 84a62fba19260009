"""Format identification by content, and the containers that hold other artifacts."""
