"""How far the search index has caught up with the database."""

from django.db import models


class IndexMark(models.Model):
    """The newest source time indexed, per kind of document. Catch-up looks
    a little further back than this (rows commit out of order) and embeds
    only what the index does not hold yet."""

    kind = models.CharField(primary_key=True, max_length=20)
    indexed_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.kind} until {self.indexed_until:%Y-%m-%d %H:%M:%S}"
