"""SSM sender: sign and deliver queued accounting messages over STOMP or ARGO AMS."""
