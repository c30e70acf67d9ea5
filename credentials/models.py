from django.db import models


def everywhere() -> list[str]:
    return ["*"]


class Credential(models.Model):
    """A named secret, encrypted at rest; the data is never shown back.

    ``allowed_paths`` lists the catalog path patterns (``finance/*``) of the
    playbooks that may use it; ``*`` is every playbook.
    """

    name = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=50)
    description = models.TextField(blank=True, default="")
    data_encrypted = models.BinaryField()
    key_id = models.CharField(max_length=32)
    allowed_paths = models.JSONField(
        default=everywhere,
        help_text="catalog path patterns of the playbooks that may use it",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class KeychainScope(models.TextChoices):
    GLOBAL = "global"
    EXECUTION = "execution"


class KeychainEntry(models.Model):
    """A cached secret with a lifetime, such as an OAuth access token.

    A global entry is shared by every run; an execution entry belongs to one
    run and goes away with it. The value is encrypted like a credential's
    data and is never shown back through the API.
    """

    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=16, choices=KeychainScope.choices,
                             default=KeychainScope.GLOBAL)
    execution = models.ForeignKey(
        "executions.Execution", null=True, blank=True, on_delete=models.CASCADE,
        related_name="keychain",
    )
    value_encrypted = models.BinaryField()
    key_id = models.CharField(max_length=32)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["name"], name="keychain_global_name",
                condition=models.Q(scope="global"),
            ),
            models.UniqueConstraint(
                fields=["execution", "name"], name="keychain_execution_name",
                condition=models.Q(scope="execution"),
            ),
            models.CheckConstraint(
                condition=models.Q(scope="global", execution__isnull=True)
                | models.Q(scope="execution", execution__isnull=False),
                name="keychain_scope_matches_execution",
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        where = self.execution_id if self.scope == KeychainScope.EXECUTION else "global"
        return f"{self.name} ({where})"

    def associated_data(self) -> bytes:
        """Binds the ciphertext to this entry, so it cannot be moved to another."""
        return f"keychain:{self.scope}:{self.execution_id or ''}:{self.name}".encode()
