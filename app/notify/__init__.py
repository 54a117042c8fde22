"""Notifications to users: an outbox written with the event, a pluggable sender."""

from app.notify.outbox import Notification, Outbox, enqueue
from app.notify.sender import LoggingSender, NotificationSender

__all__ = ["LoggingSender", "Notification", "NotificationSender", "Outbox", "enqueue"]
