"""``manage.py createpool NAME``: create a worker pool (or give it a new
enrollment token) and print the token once."""

from django.core.management.base import BaseCommand

from workers.models import Pool, hash_token, new_token


class Command(BaseCommand):
    help = "Create a worker pool or rotate its enrollment token; prints the token once."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, **options):
        token = new_token("nen")
        Pool.objects.update_or_create(name=options["name"],
                                      defaults={"enrollment_token_hash": hash_token(token)})
        self.stdout.write(token)
