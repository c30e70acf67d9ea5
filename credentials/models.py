from django.db import models


class Credential(models.Model):
    """A named secret, encrypted at rest; the data is never shown back."""

    name = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=50)
    description = models.TextField(blank=True, default="")
    data_encrypted = models.BinaryField()
    key_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"
