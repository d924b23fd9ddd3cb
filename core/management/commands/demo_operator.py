import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from core.permissions import OPERATORS_GROUP


class Command(BaseCommand):
    help = "Create (once) the demo operator account and write its credentials to a file."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="operator")
        parser.add_argument("--credentials", default="var/demo-credentials.txt")

    def handle(self, *args, username: str, credentials: str, **options):
        path = Path(credentials)
        user_model = get_user_model()
        if path.exists() and user_model.objects.filter(username=username).exists():
            return
        password = secrets.token_urlsafe(12)  # never a fixed password, even for a demo
        user, _ = user_model.objects.get_or_create(
            username=username, defaults={"email": "operator@localhost"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"demo operator: username {username}  password {password}\n")
        path.chmod(0o600)
        self.stdout.write(f"created demo operator {username} (credentials in {path})")
