"""luser_db: an async ActiveRecord ORM on asyncpg. (Being built; see issue 4.)"""

from luser_common import Page

from .embedded import start_embedded, stop_embedded

__all__ = ["Page", "start_embedded", "stop_embedded"]
