from django.db import models


class PlaybookVersion(models.Model):
    """One registered version of a playbook. Identical content is stored once."""

    path = models.CharField(max_length=500)
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    content = models.TextField()
    parsed = models.JSONField(help_text="The normalised playbook the engine runs.")
    digest = models.CharField(max_length=64, help_text="sha256 of the content.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["path", "version"], name="catalog_path_version")
        ]
        indexes = [models.Index(fields=["path", "digest"])]
        ordering = ["path", "-version"]

    def __str__(self) -> str:
        return f"{self.path} v{self.version}"
